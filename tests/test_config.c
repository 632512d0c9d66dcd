/* test_config.c: config.json: BertConfig's defaults (from transformers, via gen_io.py), label
 * resolution as transformers does it, validation errors, and save -> reload; the saved text is
 * compared with the bertlab-written config that transformers' AutoConfig read in gen_io.py.
 * `test_config --write IN OUT` loads IN, sets the five conference labels and saves OUT (used by
 * gen_io.py for the AutoConfig check). */
#include "../runtime/bert_config.h"
#include "../runtime/error.h"
#include "../runtime/fileio.h"
#include "ctest.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/io/"
static const char *conferences[5] = {"VLDB", "ISCAS", "SIGGRAPH", "INFOCOM", "WWW"};
static char tmp[256], cfgpath[512];

static int write_mode(const char *in, const char *out) {
    bert_config_t c;
    if (bert_config_load(&c, in) != 0 || bert_config_set_labels(&c, 5, conferences) != 0 ||
        bert_config_save(&c, out) != 0) {
        fprintf(stderr, "test_config --write: %s\n", bl_errmsg());
        return 1;
    }
    bert_config_free(&c);
    return 0;
}

/* Writes `json` to the temp config.json and loads it; returns the rc. */
static int load_text(bert_config_t *c, const char *json) {
    FILE *f = fopen(cfgpath, "w");
    fputs(json, f);
    fclose(f);
    return bert_config_load(c, cfgpath);
}

static void test_defaults(void) {
    bert_config_t c;
    int rc = load_text(&c, "{}");
    CHECK(rc == 0, "an empty config loads (%s)", rc ? bl_errmsg() : "ok");
    if (rc) return;
    json_error_t je;
    json_t *d = json_load_file(FIX "bert_defaults.json", 0, &je);
    CHECK(d != NULL, "bert_defaults.json (transformers' BertConfig()) present");
    if (!d) return;
    struct { const char *k; int v; } ints[] = {
        {"vocab_size", c.vocab_size}, {"hidden_size", c.hidden_size}, {"num_hidden_layers", c.num_hidden_layers},
        {"num_attention_heads", c.num_attention_heads}, {"intermediate_size", c.intermediate_size},
        {"max_position_embeddings", c.max_position_embeddings}, {"type_vocab_size", c.type_vocab_size},
        {"num_labels", c.num_labels}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        json_int_t want = json_integer_value(json_object_get(d, ints[i].k));
        CHECK(ints[i].v == want, "default %s = %d (transformers: %lld)", ints[i].k, ints[i].v, (long long)want);
    }
    struct { const char *k; float v; } nums[] = {
        {"hidden_dropout_prob", c.hidden_dropout_prob}, {"attention_probs_dropout_prob", c.attention_probs_dropout_prob},
        {"initializer_range", c.initializer_range}, {"layer_norm_eps", c.layer_norm_eps}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        double want = json_number_value(json_object_get(d, nums[i].k));
        CHECK(nums[i].v == (float)want, "default %s = %g (transformers: %g)", nums[i].k, nums[i].v, want);
    }
    CHECK(strcmp(c.hidden_act, json_string_value(json_object_get(d, "hidden_act"))) == 0, "default hidden_act %s",
          c.hidden_act);
    CHECK(c.id2label && strcmp(c.id2label[0], "LABEL_0") == 0 && strcmp(c.id2label[1], "LABEL_1") == 0,
          "default labels LABEL_0, LABEL_1");
    CHECK(c.problem_type == NULL, "no problem_type by default");
    json_decref(d);
    bert_config_free(&c);
    bert_config_free(&c); /* twice is fine */
}

static void test_minilm(void) {
    bert_config_t c;
    int rc = bert_config_load(&c, FIX "config_minilm.json");
    CHECK(rc == 0, "MiniLM config loads (%s)", rc ? bl_errmsg() : "ok");
    if (rc) return;
    CHECK(c.hidden_size == 384 && c.num_hidden_layers == 6 && c.intermediate_size == 1536 &&
          c.num_attention_heads == 12 && c.vocab_size == 30522 && c.layer_norm_eps == 1e-12f,
          "MiniLM sizes: hidden 384, 6 layers, intermediate 1536, 12 heads");
    CHECK(c.num_labels == 2, "MiniLM (no labels) gets 2 labels");
    bert_config_free(&c);
}

static void test_labels(void) {
    bert_config_t c;
    int rc = load_text(&c, "{\"num_labels\": 3}");
    CHECK(rc == 0 && c.num_labels == 3 && strcmp(c.id2label[2], "LABEL_2") == 0, "num_labels 3 -> LABEL_0..2");
    bert_config_free(&c);
    rc = load_text(&c, "{\"id2label\": {\"1\": \"b\", \"0\": \"a\", \"2\": \"c\"}}");
    CHECK(rc == 0 && c.num_labels == 3 && strcmp(c.id2label[0], "a") == 0 && strcmp(c.id2label[1], "b") == 0 &&
          strcmp(c.id2label[2], "c") == 0, "id2label alone sets 3 labels, by key");
    bert_config_free(&c);
    rc = load_text(&c, "{\"num_labels\": 5, \"id2label\": {\"0\": \"a\", \"1\": \"b\"}}");
    CHECK(rc == 0 && c.num_labels == 5 && strcmp(c.id2label[1], "LABEL_1") == 0,
          "num_labels 5 with 2 id2label entries: num_labels wins, LABEL_i (as transformers 5)");
    bert_config_free(&c);
    rc = load_text(&c, "{\"num_labels\": 2, \"id2label\": {\"0\": \"neg\", \"1\": \"pos\"}}");
    CHECK(rc == 0 && c.num_labels == 2 && strcmp(c.id2label[1], "pos") == 0, "consistent num_labels and id2label");
    bert_config_free(&c);
    rc = load_text(&c, "{\"problem_type\": \"single_label_classification\"}");
    CHECK(rc == 0 && c.problem_type && strcmp(c.problem_type, "single_label_classification") == 0, "problem_type read");
    bert_config_free(&c);
    rc = load_text(&c, "{}");
    CHECK(bert_config_set_labels(&c, 5, conferences) == 0 && c.num_labels == 5 && strcmp(c.id2label[4], "WWW") == 0,
          "set_labels with names");
    const char *dup[3] = {"a", "b", "a"};
    CHECK(bert_config_set_labels(&c, 3, dup) == -1 && strstr(bl_errmsg(), "label name 'a' appears twice (ids 0 and 2)"),
          "duplicate label names refused: %s", bl_errmsg());
    CHECK(c.num_labels == 5 && strcmp(c.id2label[4], "WWW") == 0, "a refused set_labels keeps the old labels");
    CHECK(bert_config_set_labels(&c, 0, NULL) == -1 && strstr(bl_errmsg(), "num_labels is 0, must be in 1..1024"),
          "zero labels refused: %s", bl_errmsg());
    CHECK(bert_config_set_labels(&c, 4, NULL) == 0 && c.num_labels == 4 && strcmp(c.id2label[3], "LABEL_3") == 0,
          "set_labels without names");
    bert_config_free(&c);
}

static void test_errors(void) {
    static const struct { const char *json, *pattern; } cases[] = {
        {"{\"hidden_act\": \"gelu_new\"}", "config.json: hidden_act 'gelu_new' is not supported (only \"gelu\""},
        {"{\"hidden_act\": \"relu\"}", "config.json: hidden_act 'relu' is not supported"},
        {"{\"hidden_act\": 3}", "config.json: field 'hidden_act' must be a string, got an integer"},
        {"{\"hidden_size\": 100, \"num_attention_heads\": 12}",
         "config.json: hidden_size (100) is not a multiple of num_attention_heads (12)"},
        {"{\"hidden_size\": 0}", "config.json: field 'hidden_size' is 0, must be >= 1"},
        {"{\"num_hidden_layers\": -2}", "config.json: field 'num_hidden_layers' is -2, must be >= 1"},
        {"{\"vocab_size\": \"30522\"}", "config.json: field 'vocab_size' must be an integer, got a string"},
        {"{\"intermediate_size\": 3072.5}", "config.json: field 'intermediate_size' must be an integer, got a real number"},
        {"{\"hidden_dropout_prob\": 1.5}", "config.json: field 'hidden_dropout_prob' is 1.5, must be in [0, 1)"},
        {"{\"layer_norm_eps\": 0}", "config.json: field 'layer_norm_eps' is 0, must be in (0, 1)"},
        {"{\"initializer_range\": null}", "config.json: field 'initializer_range' must be a number, got null"},
        {"{\"model_type\": \"roberta\"}", "config.json: model_type 'roberta' is not supported (only \"bert\")"},
        {"{\"position_embedding_type\": \"relative_key\"}",
         "config.json: position_embedding_type relative_key is not supported (only \"absolute\")"},
        {"{\"num_labels\": 0}", "config.json: field 'num_labels' is 0, must be in 1..1024"},
        {"{\"num_labels\": \"5\"}", "config.json: field 'num_labels' must be an integer, got a string"},
        {"{\"id2label\": {\"0\": \"a\", \"2\": \"b\"}}",
         "config.json: field 'id2label' has key '2'; keys must be the ids \"0\"..\"1\", each once"},
        {"{\"id2label\": {\"0\": \"a\", \"x\": \"b\"}}", "field 'id2label' has key 'x'"},
        {"{\"id2label\": {\"0\": 1}}", "config.json: field 'id2label' entry \"0\" must be a string, got an integer"},
        {"{\"id2label\": {\"0\": \"a\", \"1\": \"a\"}}", "config.json: field 'id2label': label name 'a' appears twice"},
        {"{\"id2label\": [\"a\", \"b\"]}", "config.json: field 'id2label' must be an object"},
        {"{\"problem_type\": \"ranking\"}", "config.json: problem_type 'ranking' is not one of"},
        {"{\"hidden_size\": 768,\n \"vocab_size\": }", "config.json:2: not valid JSON"},
        {"{\"a\": 1, \"a\": 2}", "config.json:1: not valid JSON: duplicate object key"},
        {"[1, 2]", "config.json: not a JSON object"},
        {"", "config.json:1: not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bert_config_t c;
        int rc = load_text(&c, cases[i].json);
        CHECK(rc == -1 && strstr(bl_errmsg(), cases[i].pattern), "error %zu: %s", i + 1, rc ? bl_errmsg() : "(accepted!)");
        CHECK(c.json == NULL && c.id2label == NULL, "error %zu leaves a freed config", i + 1);
        bert_config_free(&c);
    }
    bert_config_t c;
    CHECK(bert_config_load(&c, "/nonexistent/config.json") == -1 &&
          strstr(bl_errmsg(), "/nonexistent/config.json: cannot open"), "missing file: %s", bl_errmsg());
}

static void test_save_reload(void) {
    bert_config_t a, b;
    int rc = bert_config_load(&a, FIX "config_minilm.json");
    rc = rc ? rc : bert_config_set_labels(&a, 5, conferences);
    char out[512];
    snprintf(out, sizeof out, "%s/saved.json", tmp);
    rc = rc ? rc : bert_config_save(&a, out);
    CHECK(rc == 0, "save a config with 5 labels (%s)", rc ? bl_errmsg() : "ok");
    rc = rc ? rc : bert_config_load(&b, out);
    CHECK(rc == 0, "reload it (%s)", rc ? bl_errmsg() : "ok");
    if (rc) return;
    CHECK(a.vocab_size == b.vocab_size && a.hidden_size == b.hidden_size && a.num_hidden_layers == b.num_hidden_layers &&
          a.num_attention_heads == b.num_attention_heads && a.intermediate_size == b.intermediate_size &&
          a.max_position_embeddings == b.max_position_embeddings && a.type_vocab_size == b.type_vocab_size &&
          a.layer_norm_eps == b.layer_norm_eps && a.hidden_dropout_prob == b.hidden_dropout_prob &&
          a.attention_probs_dropout_prob == b.attention_probs_dropout_prob && a.initializer_range == b.initializer_range &&
          strcmp(a.hidden_act, b.hidden_act) == 0, "every field survives save -> reload");
    int same = b.num_labels == 5;
    for (int i = 0; same && i < 5; i++) same = strcmp(b.id2label[i], conferences[i]) == 0;
    CHECK(same, "the five labels survive in order");
    json_t *j = json_loads(b.json, 0, NULL);
    json_t *arch = json_object_get(j, "architectures"), *l2i = json_object_get(j, "label2id");
    CHECK(json_array_size(arch) == 1 && strcmp(json_string_value(json_array_get(arch, 0)), "BertForSequenceClassification") == 0,
          "architectures = [\"BertForSequenceClassification\"]");
    CHECK(json_integer_value(json_object_get(l2i, "SIGGRAPH")) == 2 && json_object_size(l2i) == 5, "label2id written");
    CHECK(json_object_get(j, "num_labels") == NULL, "num_labels not written (transformers derives it from id2label)");
    json_t *cf = json_object_get(j, "custom_field");
    CHECK(cf && json_real_value(json_array_get(json_object_get(cf, "nested"), 1)) == 2.5 &&
          strcmp(json_string_value(json_object_get(j, "_name_or_path")), "nreimers/MiniLM-L6-H384-uncased") == 0,
          "unknown fields kept");
    CHECK(strstr(b.json, "\"hidden_dropout_prob\": 0.1,") && strstr(b.json, "\"layer_norm_eps\": 1e-12,"),
          "floats written as their short decimal form");
    json_decref(j);
    size_t n1, n2;
    char *mine = file_read_all(out, &n1), *ref = file_read_all(FIX "config_bertlab_saved.json", &n2);
    if (!ref)
        SKIP("config_bertlab_saved.json missing: run tests/fixtures/gen_io.py after make");
    else
        CHECK(mine && n1 == n2 && memcmp(mine, ref, n1) == 0,
              "saved text equals config_bertlab_saved.json, which transformers' AutoConfig read (%zu vs %zu bytes)", n1, n2);
    free(mine);
    free(ref);
    /* a changed value is written, and the save is atomic: a failing save leaves the old file */
    b.hidden_dropout_prob = 0.25f;
    rc = bert_config_save(&b, out);
    bert_config_t c2;
    CHECK(rc == 0 && bert_config_load(&c2, out) == 0 && c2.hidden_dropout_prob == 0.25f, "changed dropout saved");
    bert_config_free(&c2);
    char bad[600];
    snprintf(bad, sizeof bad, "%s/missing_dir/config.json", tmp);
    CHECK(bert_config_save(&b, bad) == -1 && strstr(bl_errmsg(), "missing_dir/config.json: cannot create"),
          "save into a missing folder: %s", bl_errmsg());
    /* a config built from nothing (no original JSON) saves too */
    bert_config_t z = {0};
    z.vocab_size = 10; z.hidden_size = 8; z.num_hidden_layers = 1; z.num_attention_heads = 2;
    z.intermediate_size = 16; z.max_position_embeddings = 32; z.type_vocab_size = 2; z.layer_norm_eps = 1e-12f;
    z.hidden_dropout_prob = 0.1f; z.attention_probs_dropout_prob = 0.1f; z.initializer_range = 0.02f;
    strcpy(z.hidden_act, "gelu");
    bert_config_set_labels(&z, 3, NULL);
    rc = bert_config_save(&z, out);
    CHECK(rc == 0 && bert_config_load(&c2, out) == 0 && c2.hidden_size == 8 && c2.num_labels == 3 &&
          c2.hidden_dropout_prob == 0.1f, "a config without original JSON saves and reloads");
    bert_config_free(&c2);
    bert_config_free(&z);
    bert_config_free(&a);
    bert_config_free(&b);
    unlink(out);
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "--write") == 0) return write_mode(argv[2], argv[3]);
    snprintf(tmp, sizeof tmp, "/tmp/bl_test_config_XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", tmp);
    test_defaults();
    test_minilm();
    test_labels();
    test_errors();
    test_save_reload();
    unlink(cfgpath);
    rmdir(tmp);
    CT_DONE();
}
