"""hf_logits.py MODEL_DIR OUT.safetensors: the Hugging Face logits of MODEL_DIR's weights (upcast to
float32) with the fixture classifier, for the fixture batch of tests/fixtures/model/: the oracle of
test_cuda.lua's MiniLM logits on the GPU machine, whose copy of the model is float16
(scripts/gpu_pack.sh), so the committed float32 fixture does not apply. Run from the repository
root by scripts/gpu_check.sh there (it has torch and transformers); computes on the CPU in float32."""
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import BertForSequenceClassification

FIX = "tests/fixtures/model/"


def main():
    model_dir, out = sys.argv[1], sys.argv[2]
    batch = load_file(FIX + "minilm_batch.safetensors")
    head = load_file(FIX + "minilm_classifier.safetensors")
    model = BertForSequenceClassification.from_pretrained(model_dir, num_labels=5)
    model = model.float().eval()  # float16 -> float32 is exact: the weights bertlab reads
    with torch.no_grad():
        model.classifier.weight.copy_(head["classifier.weight"])
        model.classifier.bias.copy_(head["classifier.bias"])
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       token_type_ids=batch["token_type_ids"]).logits.float().contiguous()
    save_file({"logits": logits}, out)
    d = (logits - batch["logits"]).abs().max().item()
    print("hf_logits: %s: logits of the fixture batch; max |diff| from the float32 model's: %.3g" % (out, d))


if __name__ == "__main__":
    main()
