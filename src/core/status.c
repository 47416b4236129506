#include <terse/status.h>
#include <terse/types.h>
#include <terse/comm.h>

typedef struct {
    terse_status_t status;
    const char *name;
    const char *text;
} status_entry_t;

static const status_entry_t status_table[] = {
    {TERSE_OK, "OK", "success"},
    {TERSE_INPROGRESS, "INPROGRESS", "operation in progress"},
    {TERSE_ERR_INVALID_ARG, "ERR_INVALID_ARG", "invalid argument"},
    {TERSE_ERR_NO_MEMORY, "ERR_NO_MEMORY", "out of memory"},
    {TERSE_ERR_TRANSPORT, "ERR_TRANSPORT", "transport error"},
    {TERSE_ERR_TIMEOUT, "ERR_TIMEOUT", "timed out waiting for a peer"},
    {TERSE_ERR_MISMATCH, "ERR_MISMATCH", "ranks disagree about the call"},
    {TERSE_ERR_PEER_FAILED, "ERR_PEER_FAILED", "peer failed"},
    {TERSE_ERR_NONFINITE, "ERR_NONFINITE", "non-finite input"},
    {TERSE_ERR_CORRUPT, "ERR_CORRUPT", "corrupt message"},
    {TERSE_ERR_NOT_SUPPORTED, "ERR_NOT_SUPPORTED", "not supported"},
    {TERSE_ERR_BOOTSTRAP, "ERR_BOOTSTRAP", "bootstrap failed"},
    {TERSE_ERR_IO, "ERR_IO", "input/output error"},
    {TERSE_ERR_BUSY, "ERR_BUSY", "busy: operations in flight"},
    {TERSE_ERR_INTERNAL, "ERR_INTERNAL", "internal error"},
};

static const status_entry_t *find(terse_status_t s)
{
    for (size_t i = 0; i < sizeof(status_table) / sizeof(status_table[0]); i++) {
        if (status_table[i].status == s)
            return &status_table[i];
    }
    return NULL;
}

const char *terse_status_string(terse_status_t status)
{
    const status_entry_t *e = find(status);
    return e ? e->text : "unknown status";
}

const char *terse_status_name(terse_status_t status)
{
    const status_entry_t *e = find(status);
    return e ? e->name : "UNKNOWN";
}

size_t terse_dtype_size(terse_dtype_t dtype)
{
    static const size_t sizes[TERSE_DTYPE_LAST] = {4, 8, 2, 2, 1, 2, 4, 8, 1};
    return ((unsigned)dtype < TERSE_DTYPE_LAST) ? sizes[dtype] : 0;
}

const char *terse_dtype_name(terse_dtype_t dtype)
{
    static const char *const names[TERSE_DTYPE_LAST] = {
        "float32", "float64", "float16", "bfloat16", "int8", "int16", "int32", "int64", "uint8"};
    return ((unsigned)dtype < TERSE_DTYPE_LAST) ? names[dtype] : "invalid";
}

const char *terse_op_name(terse_op_t op)
{
    static const char *const names[TERSE_OP_LAST] = {"sum", "avg", "min", "max", "prod"};
    return ((unsigned)op < TERSE_OP_LAST) ? names[op] : "invalid";
}

const char *terse_version(void)
{
    return TERSE_VERSION_STRING;
}
