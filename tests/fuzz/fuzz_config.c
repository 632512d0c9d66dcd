/* fuzz_config.c: libFuzzer target for the config reader (runtime/bert_config.c): a config.json that
 * loads has sizes in range and hidden_size divisible by the heads, saves and reloads to the same
 * values; one that does not fails with a message naming the file and leaves a freed config. */
#define _GNU_SOURCE /* memfd_create, memmem */
#include "../../runtime/bert_config.h"
#include "../../runtime/error.h"
#include "fuzz_util.h"
#include <string.h>

static int fd_cfg = -1;
static char outdir[64], outpath[96];

static void remove_outdir(void) {
    unlink(outpath);
    rmdir(outdir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    fuzz_memfile(&fd_cfg, data, size, path, sizeof path);
    bert_config_t c;
    if (bert_config_load(&c, path) != 0) {
        FUZZ_ASSERT(strstr(bl_errmsg(), path) != NULL);
        FUZZ_ASSERT(c.json == NULL && c.id2label == NULL);
        return 0;
    }
    FUZZ_ASSERT(c.hidden_size >= 1 && c.num_attention_heads >= 1 && c.hidden_size % c.num_attention_heads == 0);
    FUZZ_ASSERT(c.num_labels >= 1 && c.num_labels <= BERT_MAX_LABELS && c.id2label != NULL);
    for (int i = 0; i < c.num_labels; i++) FUZZ_ASSERT(c.id2label[i] != NULL);
    if (!outdir[0]) {
        snprintf(outdir, sizeof outdir, "/dev/shm/bl_fuzz_config_XXXXXX");
        if (!mkdtemp(outdir) && !mkdtemp(strcpy(outdir, "/tmp/bl_fuzz_config_XXXXXX"))) abort();
        snprintf(outpath, sizeof outpath, "%s/config.json", outdir);
        atexit(remove_outdir);
    }
    /* save and reload: the sizes and labels survive (a config written by us must read back) */
    bert_config_t d;
    if (bert_config_save(&c, outpath) == 0) {
        FUZZ_ASSERT(bert_config_load(&d, outpath) == 0);
        FUZZ_ASSERT(d.hidden_size == c.hidden_size && d.num_hidden_layers == c.num_hidden_layers &&
                    d.vocab_size == c.vocab_size && d.num_labels == c.num_labels &&
                    d.layer_norm_eps == c.layer_norm_eps && d.hidden_dropout_prob == c.hidden_dropout_prob);
        for (int i = 0; i < c.num_labels; i++) FUZZ_ASSERT(strcmp(c.id2label[i], d.id2label[i]) == 0);
        bert_config_free(&d);
    }
    bert_config_free(&c);
    return 0;
}
