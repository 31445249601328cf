"""Small stand-ins that reproduce the shape of real models where the embedded random models hide it.

- `build_turn_end_llama`: a chat model whose template ends every turn with `<|end|>`, a token that is *not* the
  tokenizer's eos (`</s>`), and whose `generation_config.json` lists both as eos ids — the shape of
  Llama-3-Instruct (`<|eot_id|>`), Gemma (`<end_of_turn>`) and Phi-3 (`<|end|>`). Its final norm is zeroed, so every
  logit is 0 and greedy decoding always picks id 0, which is `<|end|>`: like a real chat model, it ends its turn,
  and only a backend that honours the generation config's eos ids stops there.
- `build_bert_without_max_length`: a BERT whose tokenizer has no `model_max_length`, like
  `allenai/scibert_scivocab_uncased` (transformers then reports a huge sentinel value).
"""

from __future__ import annotations

import json
from pathlib import Path

from clue.tasks import get_task
from clue.tasks.longhealth import LongHealthBase

TURN_END = "<|end|>"
WORDS = ["the", "patient", "has", "chest", "pain", "codes", "answer", "is", "a", "b", "c"]


def build_turn_end_llama(out: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = [TURN_END, "<unk>", "<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>"]
    vocab = {token: i for i, token in enumerate([*specials, *WORDS])}
    word_level = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=word_level, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [TURN_END, "<|system|>", "<|user|>", "<|assistant|>"]})
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} " + TURN_END + " {% endfor %}"
        "{% if add_generation_prompt %}<|assistant|> {% endif %}"
    )
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
        pad_token_id=vocab["<pad>"],
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.model.norm.weight.zero_()  # all logits 0: greedy picks id 0, the turn-end token
    model.save_pretrained(out)
    GenerationConfig(
        eos_token_id=[vocab["</s>"], vocab[TURN_END]], bos_token_id=vocab["<s>"], pad_token_id=vocab["<pad>"]
    ).save_pretrained(out)
    return out


def build_bert_without_max_length(out: Path) -> Path:
    """The tiny BERT stand-in with `model_max_length` removed from its tokenizer config."""
    from clue.models.tiny import build_tiny_bert

    folder = build_tiny_bert(out)
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config.pop("model_max_length", None)
    config_file.write_text(json.dumps(config))
    return folder


def longhealth_task(name: str) -> LongHealthBase:
    """The registry's LongHealth sub-task, typed as one (its prompt fitting and token budget are its own)."""
    task = get_task(name)
    assert isinstance(task, LongHealthBase), name
    return task
