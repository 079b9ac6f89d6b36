/* C interface of libdipaco_sentencepiece.so, the one place that links Debian's SentencePiece.
 *
 * Why a separate library: Debian's libsentencepiece.so.0 carries its own copy of protobuf 3.14
 * and exports those symbols; gRPC brings libprotobuf.so.32 (3.21). Both in one symbol scope
 * abort at start-up ("compiled against version 3.14.0 of the Protocol Buffer runtime").
 * dipaco loads this shim with dlopen(RTLD_LOCAL | RTLD_DEEPBIND) so SentencePiece binds to its
 * own protobuf and the rest of the process never sees it. See sentencepiece_library.h.
 *
 * Memory: every buffer or handle returned here is freed with the matching dipaco_spm_free_*.
 * Errors: functions return 0 on success; on failure they return non-zero and set *error to a
 * message (free with dipaco_spm_free_buffer). */
#ifndef DIPACO_SPM_SHIM_H_
#define DIPACO_SPM_SHIM_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DIPACO_SPM_ABI_VERSION 1

typedef struct dipaco_spm_model dipaco_spm_model;

/* Yields the next training sentence: returns 1 and sets (*data, *size), or 0 at the end.
 * The bytes must stay valid until the next call. */
typedef int (*dipaco_spm_next_sentence)(void* context, const char** data, size_t* size);

int dipaco_spm_abi_version(void);

/* Trains a model. `options` holds SentencePiece trainer flags as "key=value" lines
 * (e.g. "vocab_size=8192\nmodel_type=bpe"); `seed` seeds SentencePiece's random generator.
 * On success *model_bytes holds the serialized ModelProto. */
int dipaco_spm_train(const char* options, uint32_t seed, dipaco_spm_next_sentence next,
                     void* context, char** model_bytes, size_t* model_size, char** error);

int dipaco_spm_load(const char* model_bytes, size_t model_size, dipaco_spm_model** model,
                    char** error);
void dipaco_spm_free_model(dipaco_spm_model* model);

int dipaco_spm_encode(const dipaco_spm_model* model, const char* text, size_t size, int32_t** ids,
                      size_t* count, char** error);
int dipaco_spm_decode(const dipaco_spm_model* model, const int32_t* ids, size_t count, char** text,
                      size_t* size, char** error);

int dipaco_spm_piece_count(const dipaco_spm_model* model);
/* The piece's bytes (not NUL-terminated, valid while the model lives). */
const char* dipaco_spm_piece(const dipaco_spm_model* model, int id, size_t* size);
float dipaco_spm_score(const dipaco_spm_model* model, int id);
/* 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte (SentencePiece's types). */
int dipaco_spm_piece_type(const dipaco_spm_model* model, int id);
/* Special ids; -1 when the model has none. which: 0 unk, 1 bos, 2 eos, 3 pad. */
int dipaco_spm_special_id(const dipaco_spm_model* model, int which);

void dipaco_spm_free_buffer(void* buffer);

#ifdef __cplusplus
}
#endif

#endif /* DIPACO_SPM_SHIM_H_ */
