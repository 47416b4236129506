/* Prints the layout of every public struct that bindings/python/terse/_capi.py mirrors with
 * ctypes, for check_capi.py: "struct NAME SIZE" then "field NAME MEMBER OFFSET SIZE" lines. */
#include <terse/terse.h>

#include <stddef.h>
#include <stdio.h>

#define STRUCT(T)   printf("struct %s %zu\n", #T, sizeof(T))
#define FIELD(T, f) printf("field %s %s %zu %zu\n", #T, #f, offsetof(T, f), sizeof(((T *)0)->f))

int main(void)
{
    STRUCT(terse_oob_t);
    FIELD(terse_oob_t, allgather);
    FIELD(terse_oob_t, coll_info);
    FIELD(terse_oob_t, rank);
    FIELD(terse_oob_t, size);

    STRUCT(terse_comm_params_t);
    FIELD(terse_comm_params_t, field_mask);
    FIELD(terse_comm_params_t, oob);
    FIELD(terse_comm_params_t, progress_thread);
    FIELD(terse_comm_params_t, host_id);
    FIELD(terse_comm_params_t, timeout);
    FIELD(terse_comm_params_t, compressed_algo);
    FIELD(terse_comm_params_t, hierarchy);

    STRUCT(terse_compressor_t);
    FIELD(terse_compressor_t, field_mask);
    FIELD(terse_compressor_t, kind);
    FIELD(terse_compressor_t, ratio);
    FIELD(terse_compressor_t, randk_ratio);
    FIELD(terse_compressor_t, seed);
    FIELD(terse_compressor_t, block_size);
    FIELD(terse_compressor_t, nonfinite_passthrough);

    STRUCT(terse_ctensor_t);
    FIELD(terse_ctensor_t, id);
    FIELD(terse_ctensor_t, count);
    FIELD(terse_ctensor_t, in);
    FIELD(terse_ctensor_t, out);
    FIELD(terse_ctensor_t, worker_error);
    FIELD(terse_ctensor_t, server_error);

    STRUCT(terse_callreduce_params_t);
    FIELD(terse_callreduce_params_t, field_mask);
    FIELD(terse_callreduce_params_t, tensors);
    FIELD(terse_callreduce_params_t, ntensors);
    FIELD(terse_callreduce_params_t, compressor);
    FIELD(terse_callreduce_params_t, double_way);
    FIELD(terse_callreduce_params_t, step);
    FIELD(terse_callreduce_params_t, algo);
    FIELD(terse_callreduce_params_t, hierarchy);

    STRUCT(terse_ef_params_t);
    FIELD(terse_ef_params_t, field_mask);
    FIELD(terse_ef_params_t, mode);
    FIELD(terse_ef_params_t, compressor);
    FIELD(terse_ef_params_t, ntensors);
    FIELD(terse_ef_params_t, ids);
    FIELD(terse_ef_params_t, counts);
    FIELD(terse_ef_params_t, period);
    FIELD(terse_ef_params_t, double_way);
    FIELD(terse_ef_params_t, algo);
    FIELD(terse_ef_params_t, hierarchy);

    STRUCT(terse_model_tensor_t);
    FIELD(terse_model_tensor_t, id);
    FIELD(terse_model_tensor_t, count);
    FIELD(terse_model_tensor_t, dtype);

    STRUCT(terse_model_params_t);
    FIELD(terse_model_params_t, field_mask);
    FIELD(terse_model_params_t, mode);
    FIELD(terse_model_params_t, compressor);
    FIELD(terse_model_params_t, ntensors);
    FIELD(terse_model_params_t, tensors);
    FIELD(terse_model_params_t, period);
    FIELD(terse_model_params_t, double_way);
    FIELD(terse_model_params_t, nbuckets);
    FIELD(terse_model_params_t, bucket_end);
    FIELD(terse_model_params_t, algo);
    FIELD(terse_model_params_t, hierarchy);
    return 0;
}
