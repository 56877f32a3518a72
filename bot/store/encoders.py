"""The encoders as ONNX graphs run by onnxruntime: no torch on the answer path.

    trunk   the bundled all-MiniLM-L6-v2's bottom layers that neither adapter changes (when
            there are any): computed once per question for both models
    embed   the embedding model's own top layers (the corpus's adapter merged in): one unit
            vector per text (queries and the index)
    safety  the safety classifier's own top layers (its adapter merged in) and head:
            probabilities

Adapters trained on the top layers only (`--top-layers N` of both training commands) leave the
bottom ones as bundled; how many bottom layers the two share is read from the adapters themselves
(`shared_layers`), so adapters that change every layer (the ones in use) work as well, with only
the embeddings shared. Each graph is exported once from the local weights (`export.py`,
the only place torch is used) into `PCL_INDEX_DIR/models/<name>[-top]-<key>.onnx`. The key hashes
everything the graph is made from: the export code, the model's files, the adapter and head (for
`safety`), the layers, the token limit and the precision. A changed input is a new key, hence a
new export, and the key of the whole embedding graph is part of the index fingerprint
(`index.fingerprint`), so vectors and the model that made them never mix. Tokenising uses the
model's own `tokenizer.json` through the `tokenizers` library.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.settings import ConfigError, Settings

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1  # bump when what an export holds changes shape
MAX_TOKENS = 256  # as sentence-transformers (max_seq_length) and the classifier read a text
_CHUNK = 32  # texts per run when encoding many (the index build): sorted by length, little padding
# A batch of questions: a text this much longer (+4 tokens) than a run's first starts a new run.
_RUN_SLACK = 1.3
_EXPORT_CODE = Path(__file__).with_name("export.py")


@dataclass(frozen=True)
class ExportSpec:
    name: str  # trunk | embed | safety
    model_path: str  # the bundled sentence-transformers folder
    adapter_dir: Path | None = None  # a LoRA adapter merged in (safety: also its head and meta)
    int8: bool = False
    start: int = 0  # the first layer: 0 reads token ids, else the trunk's hidden states
    stop: int | None = None  # a trunk's end (its hidden states out); None: to the last layer

    @property
    def label(self) -> str:
        """The file name's stem before the key: a top graph is not its whole graph's stale copy."""
        return f"{self.name}-top" if self.start else self.name

    def sources(self) -> list[Path]:
        folder = Path(self.model_path)
        files = [
            p
            for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix in {".json", ".safetensors", ".txt", ".bin"}
        ]
        if self.adapter_dir is not None:
            files += sorted(p for p in self.adapter_dir.iterdir() if p.is_file())
        return files


_digests: dict[tuple[str, int, int], bytes] = {}
_digest_lock = threading.Lock()
_DIGEST_FILE = "digests.json"


def _digest(path: Path, saved: dict | None = None) -> bytes:
    """sha256 of a file, remembered per (path, size, mtime): in this process, and in `saved`
    (a dict kept in the models folder) so a later start need not read 90 MB of weights again."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _digest_lock:
        hit = _digests.get(key)
    if hit is None and saved is not None:
        row = saved.get(str(path))
        if isinstance(row, list) and len(row) == 3 and row[0] == st.st_size and row[1] == st.st_mtime_ns:
            hit = bytes.fromhex(row[2])
    if hit is None:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        hit = h.digest()
    with _digest_lock:
        _digests[key] = hit
    if saved is not None:
        saved[str(path)] = [st.st_size, st.st_mtime_ns, hit.hex()]
    return hit


def export_key(spec: ExportSpec, cache_dir: Path | None = None) -> str:
    """What the exported graph is made from, as 16 hex digits (see the module docstring).
    `cache_dir`: where file digests are remembered between processes (the models folder)."""
    saved = _load_digests(cache_dir)
    before = dict(saved) if saved is not None else None
    h = hashlib.sha256()
    h.update(f"format={EXPORT_FORMAT};name={spec.name};int8={spec.int8};max={MAX_TOKENS};".encode())
    h.update(f"layers={spec.start}:{spec.stop};".encode())
    h.update(_digest(_EXPORT_CODE))
    for path in spec.sources():
        h.update(path.name.encode() + b"\0" + _digest(path, saved))
    if saved is not None and saved != before:
        _save_digests(cache_dir, saved)
    return h.hexdigest()[:16]


def _load_digests(cache_dir: Path | None) -> dict | None:
    if cache_dir is None:
        return None
    try:
        data = json.loads((cache_dir / _DIGEST_FILE).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_digests(cache_dir: Path, saved: dict) -> None:
    """Best effort: a read-only or full disk only costs the next start a re-read."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f".{_DIGEST_FILE}.{os.getpid()}.{threading.get_ident()}"
        tmp.write_text(json.dumps(saved), encoding="utf-8")
        os.replace(tmp, cache_dir / _DIGEST_FILE)
    except OSError:
        pass


def models_dir(settings: Settings) -> Path:
    return Path(settings.index.index_dir) / "models"


def _embed_adapter(settings: Settings) -> Path | None:
    adapter = settings.index.trained("embedding") if settings.models.embed_adapter else None
    if adapter is not None and not (adapter / "adapter_config.json").exists():
        adapter = None  # no adapter trained for this corpus: the bundled model as it is
    return adapter


def embed_spec(settings: Settings, start: int = 0) -> ExportSpec:
    """The embedding graph from layer `start` (0: the whole model; its key is the one the index
    fingerprint holds, since a trunk and a top give the same vectors)."""
    path = settings.index.model_path
    if not Path(path, "tokenizer.json").exists() or not Path(path, "config.json").exists():
        raise ConfigError(
            f"No sentence-transformers model at {path} (config.json and tokenizer.json are needed). "
            "Unset PCL_EMBED_MODEL to use the bundled model, or point it at a local model folder."
        )
    return ExportSpec("embed", path, _embed_adapter(settings), settings.models.embed_int8, start)


def safety_spec(settings: Settings, adapter_dir: Path, start: int = 0) -> ExportSpec:
    return ExportSpec("safety", settings.index.model_path, adapter_dir, settings.models.safety_int8, start)


def first_adapted_layer(adapter_dir: Path | None) -> int | None:
    """The lowest layer a LoRA adapter changes (0 when it names none: every layer); None without
    an adapter."""
    if adapter_dir is None or not (adapter_dir / "adapter_config.json").exists():
        return None
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    layers = config.get("layers_to_transform")
    if layers is None:
        return 0
    return min(layers) if isinstance(layers, list) else int(layers)


def shared_layers(settings: Settings, safety_adapter: Path | None) -> int:
    """How many bottom layers the two encoders share: those neither adapter changes. Both then
    run one trunk graph (the bundled weights) for a question, and only their adapted top layers
    apart. 0 (nothing shared) without any adapter, or when one encoder is int8 and the other not."""
    if settings.models.embed_int8 != settings.models.safety_int8:
        return 0
    firsts = [
        f
        for f in (first_adapted_layer(_embed_adapter(settings)), first_adapted_layer(safety_adapter))
        if f is not None
    ]
    return min(firsts) if firsts else 0


def trunk_spec(settings: Settings, layers: int) -> ExportSpec | None:
    if layers <= 0:
        return None
    return ExportSpec("trunk", settings.index.model_path, None, settings.models.embed_int8, 0, layers)


def settings_key(settings: Settings, spec: ExportSpec) -> str:
    return export_key(spec, models_dir(settings))


def export_path(settings: Settings, spec: ExportSpec) -> Path:
    return models_dir(settings) / f"{spec.label}-{settings_key(settings, spec)}.onnx"


def ensure_export(settings: Settings, spec: ExportSpec, progress: bool = False) -> Path:
    """The exported graph for `spec`, exporting it first when missing (one process at a time)."""
    path = export_path(settings, spec)
    if path.exists():
        return path
    from filelock import FileLock

    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"Cannot create {folder} for the exported models ({exc.strerror or exc}). "
            "Set PCL_INDEX_DIR to a writable folder."
        ) from None
    with FileLock(str(folder / ".lock"), timeout=600):
        if path.exists():  # another process exported it while we waited
            return path
        if _reuse(path):
            return path
        if progress:
            print(f"Exporting the {spec.name} model to ONNX (once)…", file=sys.stderr, flush=True)
        started = time.perf_counter()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            from bot.store.export import export

            export(
                spec.name,
                spec.model_path,
                spec.adapter_dir,
                tmp,
                int8=spec.int8,
                start=spec.start,
                stop=spec.stop,
            )
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        (folder / f"{path.stem}.json").write_text(
            json.dumps(
                {
                    "name": spec.name,
                    "key": settings_key(settings, spec),
                    "int8": spec.int8,
                    "layers": [spec.start, spec.stop],
                    "model": spec.model_path,
                    "adapter": str(spec.adapter_dir or ""),
                    "seconds": round(time.perf_counter() - started, 2),
                },
                indent=1,
            ),
            encoding="utf-8",
        )
        for old in folder.glob(f"{spec.label}-{'?' * 16}.onnx"):  # earlier exports of this graph: stale now
            if old != path:
                with contextlib.suppress(OSError):
                    old.unlink()
                    old.with_suffix(".json").unlink(missing_ok=True)
                    old.with_name(f"{old.stem}.tables.json").unlink(missing_ok=True)
        log.info("exported %s in %.1f s", path.name, time.perf_counter() - started)
    return path


def _reuse(path: Path) -> bool:
    """The same export (same key, so the same inputs) made beside the default index folder:
    linked instead of exported again (a second index folder, tests, benchmarks). A hard link
    where the two share a disk, else a symbolic one (no 90 MB copy on a small disk); a copy
    only where neither works."""
    from bot.settings import IndexSettings

    twin = Path(IndexSettings().index_dir) / "models" / path.name
    if not twin.exists() or twin.resolve() == path.resolve():
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        try:
            os.link(twin, tmp)
        except OSError:
            try:
                os.symlink(twin.resolve(), tmp)
            except OSError:
                shutil.copyfile(twin, tmp)
        os.replace(tmp, path)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False


_MAPPED_MIN_BYTES = 8 << 20  # lookup tables this large are read from a memory-mapped file
_TABLES_FORMAT = 1


def mapped_tables(path: Path) -> dict[str, np.ndarray]:
    """The graph's large lookup tables (the 45 MB word-embedding table; any initializer of at
    least 8 MB read by a Gather), as read-only memory maps of .npy files beside the export.

    onnxruntime copies every initializer into the process, yet a question reads a few dozen
    rows of the word-embedding table: mapped from a file, only those pages are resident, and
    the two encoders, whose tables are the same bytes, map the same file. The tables are taken
    out of the graph once (with the `onnx` library) and listed in `<export>.tables.json`; the
    values are identical, so are the outputs."""
    listing = path.with_name(f"{path.stem}.tables.json")
    try:
        meta = json.loads(listing.read_text(encoding="utf-8"))
        if meta.get("format") != _TABLES_FORMAT:
            raise ValueError("format")
    except (OSError, ValueError):
        meta = _extract_tables(path, listing)
    out = {}
    for name, file in meta["tables"].items():
        where = path.parent / file
        try:
            with _maps_lock:  # one mapping per file: both encoders read the same pages
                if where not in _maps:
                    _maps[where] = np.load(where, mmap_mode="r")
                out[name] = _maps[where]
        except (OSError, ValueError):  # removed or damaged: the graph's own copy is used
            log.warning("lookup table %s unreadable; using the copy inside %s", file, path.name)
            return {}
    return out


_pool_lock = threading.Lock()
_maps: dict[Path, np.ndarray] = {}
_maps_lock = threading.Lock()


def _extract_tables(path: Path, listing: Path) -> dict:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    gathered = {n.input[0] for n in model.graph.node if n.op_type == "Gather" and n.input}
    tables = {}
    for init in model.graph.initializer:
        if init.name not in gathered or len(init.raw_data) < _MAPPED_MIN_BYTES:
            continue
        value = numpy_helper.to_array(init)
        file = f"table-{hashlib.sha256(value.tobytes()).hexdigest()[:16]}.npy"
        if not (path.parent / file).exists():  # the same table in another graph: one file
            tmp = path.parent / f".{file}.{os.getpid()}.{threading.get_ident()}.npy"
            np.save(tmp, value)
            os.replace(tmp, path.parent / file)
        tables[init.name] = file
    del model
    meta = {"format": _TABLES_FORMAT, "tables": tables}
    tmp = listing.with_name(f".{listing.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        os.replace(tmp, listing)
    except OSError as exc:  # read-only models folder: extracted again next time
        log.warning("could not write %s (%s)", listing, exc)
    return meta


class Graph:
    """One exported graph in an onnxruntime session; large lookup tables memory-mapped."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        self.path = path
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # A shared or busy machine: threads that spin while waiting for work take cores from the
        # rest of the process (and from the other encoder); they sleep instead.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No memory arena: the arena keeps the largest batch's buffers for good (a batch of 32 long
        # texts grew the process by ~300 MB and never gave it back); without it they are freed after
        # each run, at no measurable cost per call.
        options.enable_cpu_mem_arena = False
        # Large lookup tables from memory-mapped files (see `mapped_tables`); kept referenced here,
        # since the session reads them in place.
        self._tables = {}
        try:
            tables = mapped_tables(path)
        except Exception as exc:  # noqa: BLE001 - a memory saving only: the graph holds the tables too
            log.warning("lookup tables of %s not mapped (%s: %s)", path.name, type(exc).__name__, exc)
            tables = {}
        for name, table in tables.items():
            self._tables[name] = ort.OrtValue.ortvalue_from_numpy(table)
            options.add_initializer(name, self._tables[name])
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.output = self.session.get_outputs()[0].name
        self.width = int(self.session.get_outputs()[0].shape[-1])

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([self.output], {k: feeds[k] for k in self.inputs})[0]


_graphs: weakref.WeakValueDictionary[tuple[str, int], Graph] = weakref.WeakValueDictionary()
_graphs_lock = threading.Lock()


def load_graph(path: Path, threads: int) -> Graph:
    """One session per graph file and thread count while any encoder uses it: the trunk both
    encoders share is loaded once (the file name holds its key, so the same name is the same
    graph), and freed with the last encoder that reads it."""
    key = (str(Path(path).resolve()), threads)
    with _graphs_lock:
        graph = _graphs.get(key)
        if graph is None:
            graph = _graphs[key] = Graph(Path(path), threads)
        return graph


class Encoder:
    """Texts in, one row of floats per text out: the tokenizer, then the graph (after the shared
    trunk graph when there is one, which reads the token ids and hands its hidden states on).

    `also`: further top graphs on the same trunk, whose outputs follow the graph's in each row:
    the safety classifier's call also gives the question's embedding, for the price of the
    embedding's own top layers only. They run beside the graph, on another core."""

    def __init__(
        self, path: Path, tokenizer_file: Path, threads: int = 0, trunk: Path | None = None, also: tuple = ()
    ) -> None:
        from tokenizers import Tokenizer

        self.path = path
        self.tokenizer_file = tokenizer_file
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.no_padding()  # tokenizer.json pads to 128; pad per batch instead
        self.tokenizer.enable_truncation(MAX_TOKENS)
        # One thread per model call unless told otherwise: answering runs two graphs side by side
        # (the classifier's, and the embedding's beside it in the same call), and people
        # asking at once fill the other core, so a call spread over both cores only made them wait
        # for each other (a whole answer took 15 ms with two threads per call, 9.5 ms with one, on
        # 2 cores). Many texts at once (an index build) are split into runs that go through the
        # model side by side instead, one per core (`__call__`).
        intra = threads if threads > 0 else 1
        self.parallel_runs = max(1, (os.cpu_count() or 1) // intra)
        self._pool = None
        self.graph = load_graph(path, intra)
        self.session = self.graph.session
        self.trunk = load_graph(trunk, intra) if trunk is not None else None
        self.also = [load_graph(p, intra) for p in also]
        self.width = self.graph.width + sum(g.width for g in self.also)
        self._side = None
        if self.also and self.parallel_runs > 1:
            from concurrent.futures import ThreadPoolExecutor

            self._side = ThreadPoolExecutor(len(self.also), thread_name_prefix="onnx-side")

    def _run(self, encodings) -> np.ndarray:
        n = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), n), dtype=np.int64)
        mask = np.zeros((len(encodings), n), dtype=np.int64)
        for i, e in enumerate(encodings):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self.trunk is not None:
            feeds = {"hidden": self.trunk.run(feeds), "attention_mask": mask}
        if not self.also:
            return self.graph.run(feeds)
        if self._side is not None:  # the graphs side by side, one per core (a batch too)
            side = [self._side.submit(g.run, feeds) for g in self.also]
            return np.concatenate([self.graph.run(feeds)] + [f.result() for f in side], axis=1)
        return np.concatenate([self.graph.run(feeds)] + [g.run(feeds) for g in self.also], axis=1)

    def __call__(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.width), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(list(texts))
        if len(texts) == 1:
            return self._run(encodings)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), self.width), dtype=np.float32)
        runs = self._runs(order, encodings)
        if len(texts) > _CHUNK and self.parallel_runs > 1:  # an index build: the runs side by side
            done = self._runner().map(lambda part: self._run([encodings[i] for i in part]), runs)
            for part, rows in zip(runs, done, strict=True):
                out[part] = rows
            return out
        for part in runs:
            out[part] = self._run([encodings[i] for i in part])
        return out

    def _runner(self):
        with _pool_lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.parallel_runs, thread_name_prefix="onnx-runs")
            return self._pool

    @staticmethod
    def _runs(order: list[int], encodings) -> list[list[int]]:
        """Texts (sorted by length) split into model calls. Many texts (an index build): runs of
        32. A batch of questions asked together: a new run wherever a text is much longer than
        the run's first, since every text in a call is padded to the longest one; with one long
        message among 32 short questions, one call made each short one cost as much as the long
        one (measured: 30-50% less CPU per question for batches of 16-32 questions)."""
        if len(order) > _CHUNK:
            return [order[i : i + _CHUNK] for i in range(0, len(order), _CHUNK)]
        runs, start = [], 0
        while start < len(order):
            limit = len(encodings[order[start]].ids) * _RUN_SLACK + 4
            end = start + 1
            while end < len(order) and len(encodings[order[end]].ids) <= limit:
                end += 1
            runs.append(order[start:end])
            start = end
        return runs


def _tokenizer_file(spec: ExportSpec) -> Path:
    return Path(spec.model_path) / "tokenizer.json"


def load_embed_encoder(settings: Settings, progress: bool = False) -> tuple[Encoder, str]:
    """The embedding encoder (the shared trunk, then the embedding's own layers), and the key
    of the whole embedding graph, which the index fingerprint holds: trunk and top give the
    same vectors as the whole graph, so how the layers are split never rebuilds an index."""
    layers = shared_layers(settings, settings.index.trained("safety"))
    spec, trunk = embed_spec(settings, layers), trunk_spec(settings, layers)
    encoder = Encoder(
        ensure_export(settings, spec, progress=progress),
        _tokenizer_file(spec),
        threads=settings.models.threads,
        trunk=ensure_export(settings, trunk, progress=progress) if trunk else None,
    )
    return encoder, settings_key(settings, embed_spec(settings))


def load_safety_encoder(settings: Settings, adapter_dir: Path, progress: bool = False) -> Encoder:
    """The classifier's encoder: the shared trunk, the safety layers and head, and beside them
    the embedding's own layers, so each row is the probabilities followed by the embedding."""
    layers = shared_layers(settings, adapter_dir)
    spec, trunk = safety_spec(settings, adapter_dir, layers), trunk_spec(settings, layers)
    return Encoder(
        ensure_export(settings, spec, progress=progress),
        _tokenizer_file(spec),
        threads=settings.models.threads,
        trunk=ensure_export(settings, trunk, progress=progress) if trunk else None,
        also=(ensure_export(settings, embed_spec(settings, layers), progress=progress),),
    )
