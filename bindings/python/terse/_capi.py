"""Thin 1:1 ctypes layer over libterse.so (the C API in include/terse/).

Every function here mirrors one C function; argument and result types follow the headers.
Nothing here raises on a status: callers turn statuses into TerseError (_core.py, check()).

The constants and ctypes structs below are copies of include/terse/: the CTest python.capi
(tests/python/check_capi.py) compares them, values, members, offsets and sizes, with the
headers as compiled, so a header change this file does not follow fails the tests.

Finding the library, in order: $TERSE_LIBRARY (a path to libterse.so), the path recorded at
install time in _libpath.py, then the dynamic loader's search path ("libterse.so.0").
"""
import ctypes
import os

c_status = ctypes.c_int
c_comm = ctypes.c_void_p
c_req = ctypes.c_void_p
c_ef = ctypes.c_void_p
c_model = ctypes.c_void_p

# enum terse_dtype (include/terse/types.h)
DTYPE_FLOAT32, DTYPE_FLOAT64, DTYPE_FLOAT16, DTYPE_BFLOAT16 = 0, 1, 2, 3
DTYPE_INT8, DTYPE_INT16, DTYPE_INT32, DTYPE_INT64, DTYPE_UINT8 = 4, 5, 6, 7, 8
# enum terse_op (include/terse/types.h)
OP_SUM, OP_AVG, OP_MIN, OP_MAX, OP_PROD = 0, 1, 2, 3, 4
# enum terse_status (include/terse/status.h)
OK, INPROGRESS = 0, 1
ERR_INVALID_ARG, ERR_NO_MEMORY, ERR_TRANSPORT, ERR_TIMEOUT = -1, -2, -3, -4
ERR_MISMATCH, ERR_PEER_FAILED, ERR_NONFINITE, ERR_CORRUPT = -5, -6, -7, -8
ERR_NOT_SUPPORTED, ERR_BOOTSTRAP, ERR_IO, ERR_BUSY, ERR_INTERNAL = -9, -10, -11, -12, -13
# enum terse_compressed_algo, enum terse_hierarchy (include/terse/types.h)
COMPRESSED_ALGO_AUTO, COMPRESSED_ALGO_SPARSE_ALLGATHER, COMPRESSED_ALGO_SPARSE_RS_AG = 0, 1, 2
COMPRESSED_ALGO_SIGN_ALLGATHER, COMPRESSED_ALGO_SIGN_A2A_AG, COMPRESSED_ALGO_DENSE = 3, 4, 5
HIERARCHY_NONE, HIERARCHY_NODE = 0, 1
UNDEFINED = -1  # TERSE_UNDEFINED: terse_comm_split color of a rank that joins no communicator
# terse_comm_params field_mask bits (include/terse/comm.h)
COMM_PARAM_FIELD_OOB = 1 << 0
COMM_PARAM_FIELD_PROGRESS_THREAD = 1 << 1
COMM_PARAM_FIELD_HOST_ID = 1 << 2
COMM_PARAM_FIELD_TIMEOUT = 1 << 3
COMM_PARAM_FIELD_COMPRESSED_ALGO = 1 << 4
COMM_PARAM_FIELD_HIERARCHY = 1 << 5
# enum terse_compressor_kind and field_mask bits (include/terse/compress.h)
COMPRESSOR_NONE, COMPRESSOR_TOPK, COMPRESSOR_SIGN, COMPRESSOR_RANDK = 0, 1, 2, 3
COMPRESSOR_INDUCED, COMPRESSOR_FP16, COMPRESSOR_BF16 = 4, 5, 6
COMPRESSOR_FIELD_SEED = 1 << 0
COMPRESSOR_FIELD_BLOCK_SIZE = 1 << 1
COMPRESSOR_FIELD_NONFINITE_PASSTHROUGH = 1 << 2
# terse_callreduce_params field_mask bits (include/terse/compressed.h)
CALLREDUCE_FIELD_DOUBLE_WAY = 1 << 0
CALLREDUCE_FIELD_STEP = 1 << 1
CALLREDUCE_FIELD_ALGO = 1 << 2
CALLREDUCE_FIELD_HIERARCHY = 1 << 3
# enum terse_ef_mode and terse_ef_params field_mask bits (include/terse/ef.h)
EF_MODE_NONE, EF_MODE_EF, EF_MODE_SAEF = 0, 1, 2
EF_FIELD_PERIOD = 1 << 0
EF_FIELD_DOUBLE_WAY = 1 << 1
EF_FIELD_ALGO = 1 << 2
EF_FIELD_HIERARCHY = 1 << 3
# terse_model_params field_mask bits (include/terse/model.h)
MODEL_FIELD_PERIOD = 1 << 0
MODEL_FIELD_DOUBLE_WAY = 1 << 1
MODEL_FIELD_BUCKETS = 1 << 2
MODEL_FIELD_ALGO = 1 << 3
MODEL_FIELD_HIERARCHY = 1 << 4

OOB_ALLGATHER_FUNC = ctypes.CFUNCTYPE(c_status, ctypes.c_void_p, ctypes.c_void_p,
                                      ctypes.c_size_t, ctypes.c_void_p)


class Oob(ctypes.Structure):
    _fields_ = [("allgather", OOB_ALLGATHER_FUNC), ("coll_info", ctypes.c_void_p),
                ("rank", ctypes.c_int), ("size", ctypes.c_int)]


class CommParams(ctypes.Structure):
    _fields_ = [("field_mask", ctypes.c_uint64), ("oob", Oob), ("progress_thread", ctypes.c_int),
                ("host_id", ctypes.c_char_p), ("timeout", ctypes.c_double),
                ("compressed_algo", ctypes.c_int), ("hierarchy", ctypes.c_int)]


class Compressor(ctypes.Structure):
    _fields_ = [("field_mask", ctypes.c_uint64), ("kind", ctypes.c_int),
                ("ratio", ctypes.c_double), ("randk_ratio", ctypes.c_double),
                ("seed", ctypes.c_uint64), ("block_size", ctypes.c_size_t),
                ("nonfinite_passthrough", ctypes.c_int)]


class CTensor(ctypes.Structure):
    """terse_ctensor_t; ``input`` is the C field ``in`` (a Python keyword)."""
    _fields_ = [("id", ctypes.c_uint32), ("count", ctypes.c_size_t), ("input", ctypes.c_void_p),
                ("out", ctypes.c_void_p), ("worker_error", ctypes.c_void_p),
                ("server_error", ctypes.c_void_p)]


class CallreduceParams(ctypes.Structure):
    """terse_callreduce_params_t."""
    _fields_ = [("field_mask", ctypes.c_uint64), ("tensors", ctypes.POINTER(CTensor)),
                ("ntensors", ctypes.c_size_t), ("compressor", ctypes.POINTER(Compressor)),
                ("double_way", ctypes.c_int), ("step", ctypes.c_uint64),
                ("algo", ctypes.c_int), ("hierarchy", ctypes.c_int)]


class EfParams(ctypes.Structure):
    """terse_ef_params_t."""
    _fields_ = [("field_mask", ctypes.c_uint64), ("mode", ctypes.c_int),
                ("compressor", ctypes.POINTER(Compressor)), ("ntensors", ctypes.c_size_t),
                ("ids", ctypes.POINTER(ctypes.c_uint32)),
                ("counts", ctypes.POINTER(ctypes.c_size_t)), ("period", ctypes.c_uint64),
                ("double_way", ctypes.c_int), ("algo", ctypes.c_int), ("hierarchy", ctypes.c_int)]


class ModelTensor(ctypes.Structure):
    """terse_model_tensor_t."""
    _fields_ = [("id", ctypes.c_uint32), ("count", ctypes.c_size_t), ("dtype", ctypes.c_int)]


class ModelParams(ctypes.Structure):
    """terse_model_params_t."""
    _fields_ = [("field_mask", ctypes.c_uint64), ("mode", ctypes.c_int),
                ("compressor", ctypes.POINTER(Compressor)), ("ntensors", ctypes.c_size_t),
                ("tensors", ctypes.POINTER(ModelTensor)), ("period", ctypes.c_uint64),
                ("double_way", ctypes.c_int), ("nbuckets", ctypes.c_size_t),
                ("bucket_end", ctypes.POINTER(ctypes.c_size_t)),
                ("algo", ctypes.c_int), ("hierarchy", ctypes.c_int)]


def _find_library():
    path = os.environ.get("TERSE_LIBRARY")
    if path:
        return path
    try:
        from . import _libpath  # written by `cmake --install`
        if _libpath.LIBRARY and os.path.exists(_libpath.LIBRARY):
            return _libpath.LIBRARY
    except ImportError:
        pass
    return "libterse.so.0"


lib = ctypes.CDLL(_find_library())
# The C library warns about TERSE_* variables it does not know; TERSE_LIBRARY is ours. Drop it
# from the C environment only (os.environ, and so child processes, keep it).
if "TERSE_LIBRARY" in os.environ:
    os.unsetenv("TERSE_LIBRARY")

_P = ctypes.c_void_p
_SZ = ctypes.c_size_t
_PSZ = ctypes.POINTER(ctypes.c_size_t)
_I = ctypes.c_int


def _decl(name, res, *args):
    fn = getattr(lib, name)
    fn.restype = res
    fn.argtypes = list(args)
    globals()[name] = fn


_decl("terse_status_string", ctypes.c_char_p, c_status)
_decl("terse_status_name", ctypes.c_char_p, c_status)
_decl("terse_version", ctypes.c_char_p)
_decl("terse_dtype_size", _SZ, _I)
_decl("terse_comm_create", c_status, ctypes.POINTER(CommParams), ctypes.POINTER(c_comm))
_decl("terse_comm_split", c_status, c_comm, _I, _I, ctypes.POINTER(c_comm))
_decl("terse_comm_dup", c_status, c_comm, ctypes.POINTER(c_comm))
_decl("terse_comm_destroy", c_status, c_comm)
for _n in ("rank", "size", "local_rank", "local_size", "cross_rank", "cross_size"):
    _decl("terse_comm_" + _n, _I, c_comm)
_decl("terse_comm_last_error", ctypes.c_char_p, c_comm)
_decl("terse_comm_progress", c_status, c_comm)
_decl("terse_barrier", c_status, c_comm)
_decl("terse_iallreduce", c_status, c_comm, _P, _P, _SZ, _I, _I, ctypes.POINTER(c_req))
_decl("terse_iallgather", c_status, c_comm, _P, _P, _SZ, _I, ctypes.POINTER(c_req))
_decl("terse_iallgatherv", c_status, c_comm, _P, _P, _PSZ, _PSZ, _I, ctypes.POINTER(c_req))
_decl("terse_ibcast", c_status, c_comm, _P, _SZ, _I, _I, ctypes.POINTER(c_req))
_decl("terse_ialltoall", c_status, c_comm, _P, _P, _SZ, _I, ctypes.POINTER(c_req))
_decl("terse_ibarrier", c_status, c_comm, ctypes.POINTER(c_req))
_decl("terse_ireduce_scatter", c_status, c_comm, _P, _P, _SZ, _I, _I, ctypes.POINTER(c_req))
_decl("terse_ireduce_scatter_v", c_status, c_comm, _P, _P, _PSZ, _I, _I, ctypes.POINTER(c_req))
_decl("terse_ireduce", c_status, c_comm, _P, _P, _SZ, _I, _I, _I, ctypes.POINTER(c_req))
_decl("terse_test", c_status, c_req)
_decl("terse_wait", c_status, c_req)
_decl("terse_request_free", None, c_req)
_decl("terse_request_algorithm", ctypes.c_char_p, c_req)
_decl("terse_allreduce", c_status, c_comm, _P, _P, _SZ, _I, _I)
_decl("terse_allgather", c_status, c_comm, _P, _P, _SZ, _I)
_decl("terse_allgatherv", c_status, c_comm, _P, _P, _PSZ, _PSZ, _I)
_decl("terse_bcast", c_status, c_comm, _P, _SZ, _I, _I)
_decl("terse_alltoall", c_status, c_comm, _P, _P, _SZ, _I)
_decl("terse_alltoallv", c_status, c_comm, _P, _PSZ, _PSZ, _P, _PSZ, _PSZ, _I)
_decl("terse_reduce_scatter", c_status, c_comm, _P, _P, _SZ, _I, _I)
_decl("terse_reduce_scatter_v", c_status, c_comm, _P, _P, _PSZ, _I, _I)
_decl("terse_reduce", c_status, c_comm, _P, _P, _SZ, _I, _I, _I)
_decl("terse_compressor_parse", c_status, ctypes.c_char_p, ctypes.POINTER(Compressor))
_decl("terse_compressed_algo_parse", c_status, ctypes.c_char_p, ctypes.POINTER(_I))
_decl("terse_hierarchy_parse", c_status, ctypes.c_char_p, ctypes.POINTER(_I))
_decl("terse_compressed_algo_name", ctypes.c_char_p, _I)
_decl("terse_hierarchy_name", ctypes.c_char_p, _I)
_decl("terse_compressor_format", c_status, ctypes.POINTER(Compressor), ctypes.c_char_p, _SZ)
_decl("terse_compressor_validate", c_status, ctypes.POINTER(Compressor))
_decl("terse_compress_max_bytes", _SZ, ctypes.POINTER(Compressor), _SZ)
_decl("terse_compress", c_status, ctypes.POINTER(Compressor), _P, _SZ, ctypes.c_uint32,
      ctypes.c_uint64, _P, _SZ, _PSZ, _P, _P)
_decl("terse_decompress", c_status, ctypes.POINTER(Compressor), _P, _SZ, _SZ, ctypes.c_uint32,
      ctypes.c_uint64, _P)
_decl("terse_icompressed_allreduce", c_status, c_comm, ctypes.POINTER(CallreduceParams),
      ctypes.POINTER(c_req))
_decl("terse_compressed_allreduce", c_status, c_comm, ctypes.POINTER(CallreduceParams))
_decl("terse_request_bytes_sent", ctypes.c_uint64, c_req)
_PP = ctypes.POINTER(ctypes.c_void_p)  # const float *const * / float *const *
_decl("terse_ef_create", c_status, c_comm, ctypes.POINTER(EfParams), ctypes.POINTER(c_ef))
_decl("terse_ef_destroy", None, c_ef)
_decl("terse_ef_prepare", c_status, c_ef, _PP, _PP)
_decl("terse_ef_exchange", c_status, c_ef, _PP, _PP)
_decl("terse_ef_step", ctypes.c_uint64, c_ef)
_decl("terse_ef_averaging_due", _I, c_ef)
_decl("terse_ef_bytes_sent", ctypes.c_uint64, c_ef)
_decl("terse_ef_worker_error", ctypes.POINTER(ctypes.c_float), c_ef, _SZ)
_decl("terse_ef_server_error", ctypes.POINTER(ctypes.c_float), c_ef, _SZ)
_decl("terse_ef_save_size", _SZ, c_ef)
_decl("terse_ef_save", c_status, c_ef, _P, _SZ, _PSZ)
_decl("terse_ef_restore", c_status, c_ef, _P, _SZ)
_decl("terse_model_create", c_status, c_comm, ctypes.POINTER(ModelParams),
      ctypes.POINTER(c_model))
_decl("terse_model_destroy", None, c_model)
_decl("terse_model_set_point", c_status, c_model, _PP)
_decl("terse_model_has_point", _I, c_model)
_decl("terse_model_post", c_status, c_model, _SZ, _PP)
_decl("terse_model_posted", _SZ, c_model)
_decl("terse_model_finish", c_status, c_model, _PP)
_decl("terse_model_write_point", c_status, c_model, _PP)
_decl("terse_model_step", ctypes.c_uint64, c_model)
_decl("terse_model_bytes_sent", ctypes.c_uint64, c_model)
_decl("terse_model_nbuckets", _SZ, c_model)
_decl("terse_model_consensus", c_status, c_model, _SZ, _P)
_decl("terse_model_worker_error", c_status, c_model, _SZ, _P)
_decl("terse_model_server_error", c_status, c_model, _SZ, _P)
_decl("terse_model_save_size", _SZ, c_model)
_decl("terse_model_save", c_status, c_model, _P, _SZ, _PSZ)
_decl("terse_model_restore", c_status, c_model, _P, _SZ, _PP)
