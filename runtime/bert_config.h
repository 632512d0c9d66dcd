/* bert_config.h: a BERT model's config.json (Hugging Face's BertConfig fields we use). */
#ifndef BL_BERT_CONFIG_H
#define BL_BERT_CONFIG_H

#define BERT_MAX_LABELS 1024
/* Largest model config.json may describe (encoder and pooler parameters): 2^32, 16 GiB of float32. */
#define BERT_MAX_PARAMS 4294967296.0

typedef struct {
    int vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size;
    int max_position_embeddings, type_vocab_size;
    float layer_norm_eps, hidden_dropout_prob, attention_probs_dropout_prob, initializer_range;
    char hidden_act[32];         /* "gelu" (erf form) is the one supported */
    int num_labels;              /* 2 when config.json has neither num_labels nor id2label */
    char **id2label;             /* num_labels strings (malloc'd), "LABEL_0".. by default */
    char *problem_type;          /* NULL or e.g. "single_label_classification" */
    float classifier_dropout;    /* dropout before the classifier: config.json's classifier_dropout,
                                    or hidden_dropout_prob when it is unset or null (as HF) */
    char *json;                  /* the whole original JSON text, so unknown fields survive a save */
} bert_config_t;

/* Reads config.json at `path`, filling defaults as BertConfig does; -1 with "config.json: ..." on
 * a missing file, bad JSON, a missing or out-of-range field ("too large" past a field's bound or when
 * the model would have more than BERT_MAX_PARAMS parameters), or an unsupported hidden_act. */
int bert_config_load(bert_config_t *cfg, const char *path);
/* Sets num_labels and the label names (names may be NULL for LABEL_i). */
int bert_config_set_labels(bert_config_t *cfg, int num_labels, const char *const *names);
/* Writes config.json atomically, keeping unknown fields of the original, with architectures =
 * ["BertForSequenceClassification"], num_labels, id2label and label2id as transformers writes them. */
int bert_config_save(const bert_config_t *cfg, const char *path);
void bert_config_free(bert_config_t *cfg);

#endif
