"""Tiny random chat models built offline and deterministically: the embedded default of `pytest benchmarks`.

They produce noise. Their point is that every real code path (tokenizer with a chat template, AutoModel loading
from a local folder, batched generation, truncation to the context) runs on a fresh machine with no download.
A byte-level BPE tokenizer is trained with `tokenizers` on a fixed corpus, and a random 2-layer Llama is
initialised from `seed` and saved with `save_pretrained`. Same seed, same files (checked by a test).
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clue.util.files import build_folder

EOS_SCALE = 1.8  # how much larger the end-of-turn embedding is than a random one (see _write_tiny_llama)
# 5: the end-of-turn token scaled up, so the random model stops like real ones; 4: vocabularies built in Python,
# identical on every machine; 3: a fixed corpus
BUILDER_VERSION = 5
VOCAB_SIZE = 1024
CONTEXT = 4096

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]

# A fixed training corpus: synthetic clinical phrases, never real patient text.
_CORPUS = [
    "The patient is a 67 year old man with a history of hypertension, type 2 diabetes mellitus and chronic "
    "kidney disease stage 3 who presented with chest pain and shortness of breath.",
    "Discharge diagnosis: non-ST elevation myocardial infarction, acute on chronic heart failure, anemia.",
    "Brief hospital course: the patient was admitted to the cardiology service and started on heparin drip.",
    "ICD-10 Codes: I21.4, I50.23, D64.9, E11.22, N18.30, I10, Z79.4, E78.5, J18.9, A41.9, N17.9, K57.30",
    "SENTENCE_1: Chest x-ray showed bilateral infiltrates. SENTENCE_2: The patient has pneumonia.",
    "ENTAILMENT NEUTRAL CONTRADICTION entailment neutral contradiction",
    "Medications on admission: metformin 1000 mg twice daily, lisinopril 20 mg daily, atorvastatin 40 mg.",
    "Discharge condition: mental status clear and coherent, level of consciousness alert and interactive.",
    "Physical exam: afebrile, blood pressure 142/88, heart rate 96, oxygen saturation 93% on room air.",
    "Labs notable for creatinine 2.1, hemoglobin 8.9, troponin 0.45, white blood cell count 14.2.",
    "Summary of the question: what are the side effects of the medication and how long do they last?",
    "Assessment and plan: sepsis secondary to urinary tract infection, continue ceftriaxone, follow cultures.",
    "You are a helpful medical assistant. Answer the question using the patient's documents only.",
    "Summarize the consumer health question in one short sentence. List the patient's problems and diagnoses.",
    "Determine whether the second sentence follows from the first: entailment, neutral or contradiction.",
    "Extract the ICD-10 codes of the admission from the discharge summary. The correct answer is B: anemia.",
]


def _corpus() -> list[str]:
    """The tokenizers' training text: fixed here, so editing a task's prompt never changes the models' bytes."""
    return _CORPUS * 4


def bertscore_stand_in(model: str, cache_dir: Path) -> Callable[[], tuple[Path, int]] | None:
    """For BERTScore model "tiny-bert" (the offline stand-in for SciBERT in the embedded default): a builder of its
    folder (made in the cache on first use) and layer; None for a real model, loaded as named."""
    if model != "tiny-bert":
        return None
    return lambda: (build_tiny_bert(tiny_model_dir(cache_dir, 0, "bert")), 2)


def build_tiny_llama(out_dir: Path, seed: int) -> Path:
    """Write tokenizer + random 2-layer Llama to `out_dir`."""
    return build_folder(out_dir, lambda tmp: _write_tiny_llama(tmp, seed))


def _write_tiny_llama(tmp: Path, seed: int) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    pre = pre_tokenizers.ByteLevel(add_prefix_space=False)
    vocab, merges = bpe_vocabulary(_corpus(), pre, SPECIAL_TOKENS, VOCAB_SIZE)
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    bpe.pre_tokenizer = pre
    bpe.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="<|end|>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=CONTEXT,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(tmp)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=CONTEXT,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        # std 0.2 instead of 0.02: a random model then emits varied tokens rather than one repeated newline,
        # so ROUGE, BERTScore and UMLS linking see real text in the default run
        initializer_range=0.2,
    )
    model = LlamaForCausalLM(config)
    # the end-of-turn embedding (tied to its output row) scaled up: greedy decoding then stops after a few to a few
    # hundred tokens, as real chat models mostly do, instead of running to max_new_tokens on ~95 % of prompts (the
    # default run spent most of its time there, measured in studies/generation_throughput.py)
    with torch.no_grad():
        model.get_input_embeddings().weight[tokenizer.eos_token_id] *= EOS_SCALE
    model.generation_config.do_sample = False
    model.save_pretrained(tmp)


def build_tiny_bert(out_dir: Path, seed: int = 0) -> Path:
    """A WordPiece tokenizer + random 2-layer BERT: the offline stand-in for SciBERT in BERTScore."""
    return build_folder(out_dir, lambda tmp: _write_tiny_bert(tmp, seed))


def _write_tiny_bert(tmp: Path, seed: int) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wordpiece = Tokenizer(
        models.WordPiece(
            vocab=wordpiece_vocabulary(_corpus(), normalizer, pre, specials, VOCAB_SIZE), unk_token="[UNK]"
        )
    )
    wordpiece.normalizer = normalizer
    wordpiece.pre_tokenizer = pre
    cls, sep = wordpiece.token_to_id("[CLS]"), wordpiece.token_to_id("[SEP]")
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    wordpiece.decoder = decoders.WordPiece()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=wordpiece,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    tokenizer.save_pretrained(tmp)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(tmp)


def bpe_vocabulary(
    corpus: list[str], pre: Any, specials: list[str], size: int
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE trained here, in Python, with every tie broken by the pair itself: the same vocabulary and
    merges on every machine (the `tokenizers` trainers break ties in hash-map order, which differs per process)."""
    counts = Counter(word for text in corpus for word, _ in pre.pre_tokenize_str(text))
    words = {tuple(word): n for word, n in sorted(counts.items())}
    alphabet = sorted(set(pre_tokenizers_alphabet()) | {c for word in words for c in word})
    vocab = {token: i for i, token in enumerate([*specials, *alphabet])}
    merges: list[tuple[str, str]] = []
    while len(vocab) < size:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, n in words.items():
            for pair in itertools.pairwise(word):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        vocab["".join(best)] = len(vocab)
        words = {_merge_pair(word, best): n for word, n in words.items()}
    return vocab, merges


def _merge_pair(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out: list[str] = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def pre_tokenizers_alphabet() -> list[str]:
    from tokenizers import pre_tokenizers

    return sorted(pre_tokenizers.ByteLevel.alphabet())


def wordpiece_vocabulary(
    corpus: list[str], normalizer: Any, pre: Any, specials: list[str], size: int
) -> dict[str, int]:
    """A WordPiece vocabulary made here, in Python: the special tokens, every character alone and as a
    continuation ("##c"), then whole words by frequency (ties by the word): the same on every machine."""
    counts = Counter(word for text in corpus for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for word in counts for c in word})
    words = [w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if len(w) > 1]
    tokens = list(dict.fromkeys([*specials, *chars, *(f"##{c}" for c in chars), *words]))[:size]
    return {token: i for i, token in enumerate(tokens)}


def tiny_model_dir(cache_dir: Path, seed: int, kind: str = "llama") -> Path:
    return cache_dir / "models" / f"tiny-{kind}-v{BUILDER_VERSION}-seed{seed}"


def folder_digest(folder: Path) -> str:
    """sha256 over every file's relative name and content hash: equal digests mean identical models."""
    from clue.store.fingerprint import file_sha256

    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(file.relative_to(folder).as_posix().encode())
        digest.update(file_sha256(file).encode())
    return digest.hexdigest()
