/* Payload checksums: a 64-bit hash of a byte range, cheap enough to run over every message the
 * request engine sends and receives (see TERSE_CHECKSUM). Not cryptographic: it catches
 * corruption (any change inside one aligned 8-byte word always, anything else with
 * probability 1 - 2^-64 for practical purposes), not tampering. */
#ifndef TERSE_CORE_CHECKSUM_H
#define TERSE_CORE_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* Checksum of @len bytes at @data (any alignment; NULL is fine when @len is 0). The value
 * depends on the bytes and @len only, read as little-endian words: hosts that exchange sums
 * must be little-endian, as the message header already requires. */
uint64_t terse__checksum(const void *data, size_t len);

#endif
