"""Built-in BlazingText, supervised mode, on fastText: ``python -m modelyard.runtimes.blazingtext``.

Channels ``train`` (required) and ``validation`` (optional) hold fastText-format files,
one example per line: ``__label__<category> text``. Hyperparameters are BlazingText's
(https://docs.aws.amazon.com/sagemaker/latest/dg/blazingtext_hyperparameters.html) and map
one to one onto ``fasttext.train_supervised``. The log speaks BlazingText's dialect so the
usual metric regexes work (``#train_accuracy: (\\S+)``, ``#validation_accuracy: (\\S+)``),
and the model is ``model/model.bin`` as fastText saves it.

Wall time is training plus one ``test()`` per channel, and not much more: channel files
are handed to fastText in place (concatenated only when a channel has several), and after
training the save and the tests share the idle cores in forked processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from modelyard.runtimes import container
from modelyard.runtimes.container import UserError, log

SUPPORTED_MODE = "supervised"
WORD2VEC_MODES = ("skipgram", "cbow", "batch_skipgram")
# Hyperparameters of BlazingText's other modes: accepted (a tuning job may carry them) but
# meaningless for supervised training, as in BlazingText itself.
IGNORED_IN_SUPERVISED = (
    "min_char", "max_char", "subwords", "window_size", "negative_samples",
    "sampling_threshold", "batch_size", "evaluation",
)


@dataclass(frozen=True)
class Hyperparameters:
    epochs: int = 5
    learning_rate: float = 0.05
    min_count: int = 5
    vector_dim: int = 100
    word_ngrams: int = 2
    buckets: int = 2_000_000
    early_stopping: bool = False
    patience: int = 4
    min_epochs: int = 5


# ---------------------------------------------------------------- hyperparameters


def _integer(name: str, raw: str, minimum: int) -> int:
    try:
        number = float(raw)  # tuners may send "10.0" for an integer range
        if not number.is_integer():
            raise ValueError
    except ValueError:
        raise UserError(f"Hyperparameter {name}: expected an integer, got {raw!r}") from None
    if number < minimum:
        raise UserError(f"Hyperparameter {name}: must be >= {minimum}, got {raw!r}")
    return int(number)


def _positive_float(name: str, raw: str) -> float:
    try:
        number = float(raw)
    except ValueError:
        raise UserError(f"Hyperparameter {name}: expected a number, got {raw!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise UserError(f"Hyperparameter {name}: must be a positive finite number, got {raw!r}")
    return number


def _boolean(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise UserError(f"Hyperparameter {name}: expected True or False, got {raw!r}")


def parse_hyperparameters(raw: dict[str, str]) -> Hyperparameters:
    """Validate BlazingText's hyperparameters; every error names the hyperparameter."""
    mode = raw.get("mode")
    if mode != SUPPORTED_MODE:
        shown = "missing" if mode is None else repr(mode)
        raise UserError(
            f"Hyperparameter mode is {shown}: only mode 'supervised' (text classification) "
            f"runs in modelyard so far; the Word2Vec modes {', '.join(WORD2VEC_MODES)} do not."
        )
    if "pretrained_vectors" in raw:
        raise UserError("Hyperparameter pretrained_vectors is not supported in modelyard.")
    integers = {  # name -> smallest allowed value
        "epochs": 1, "min_count": 0, "vector_dim": 1, "word_ngrams": 1,
        "buckets": 1, "patience": 1, "min_epochs": 1,
    }
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name in integers:
            values[name] = _integer(name, value, integers[name])
        elif name == "learning_rate":
            values[name] = _positive_float(name, value)
        elif name == "early_stopping":
            values[name] = _boolean(name, value)
        elif name == "mode" or name in IGNORED_IN_SUPERVISED:
            continue
        elif name.startswith(("_", "sagemaker_")):
            continue  # platform-added, e.g. _tuning_objective_metric from a tuning job
        else:
            raise UserError(f"Hyperparameter {name} is not a BlazingText supervised hyperparameter.")
    return Hyperparameters(**values)


# ---------------------------------------------------------------- channels


def _channel_files(name: str) -> list[Path]:
    files = container.channel_files(name)
    if not files or all(path.stat().st_size == 0 for path in files):
        raise UserError(f"No data in the {name} channel ({container.channel_dir(name)}).")
    for path in files:
        log(f"Processing {path} . File size: {path.stat().st_size / 1e6:.2f} MB")
    return files


@contextlib.contextmanager
def _single_file(files: list[Path]) -> Iterator[Path]:
    """fastText reads one path: use the file in place, or concatenate several (the only
    case that costs an extra pass), making sure every file ends with a newline."""
    if len(files) == 1:
        yield files[0]
        return
    with tempfile.TemporaryDirectory(prefix="blazingtext-") as scratch:
        combined = Path(scratch) / "combined.txt"
        with combined.open("wb") as out:
            for path in files:
                with path.open("rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
                    size = part.tell()
                    part.seek(max(0, size - 1))
                    if size and part.read(1) != b"\n":
                        out.write(b"\n")  # else the next file's first line joins this one's last
        yield combined


# ---------------------------------------------------------------- fastText plumbing


class _ProgressRelay:
    """Turn fastText's progress (``\\r``-rewritten on stderr) into BlazingText log lines.

    fastText writes from C++ straight to file descriptor 2, so the descriptor itself is
    pointed at a pipe while training runs; a thread reads it (``train`` releases the GIL)
    and prints ``##### Alpha: ... Progress: ...% Million Words/sec: ... #####`` at most
    once a second. Other lines (``Read 3M words``, ``Number of labels: 10``) pass through.
    """

    PROGRESS = re.compile(r"Progress:\s*([\d.]+)%\s*words/sec/thread:\s*(\d+)\s*lr:\s*([-\d.e]+)")

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.million_words_per_second = 0.0
        self._last_emitted = 0.0
        self._finished = False

    def __enter__(self) -> "_ProgressRelay":
        sys.stderr.flush()
        self._saved_stderr = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._reader = threading.Thread(target=self._relay, args=(read_end,), daemon=True)
        self._reader.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        sys.stderr.flush()
        os.dup2(self._saved_stderr, 2)  # drops the pipe's last writer: the reader sees EOF
        os.close(self._saved_stderr)
        self._reader.join()

    def _relay(self, read_end: int) -> None:
        pending = b""
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                *pieces, pending = re.split(rb"[\r\n]", pending + chunk)
                for piece in pieces:
                    self._handle(piece.decode("utf-8", "replace").strip())
        self._handle(pending.decode("utf-8", "replace").strip())

    def _handle(self, text: str) -> None:
        # Must never raise: a dead reader would leave fastText blocked on a full pipe.
        with contextlib.suppress(Exception):
            self._show(text)

    def _show(self, text: str) -> None:
        if not text:
            return
        match = self.PROGRESS.search(text)
        if match is None:
            log(text)
            return
        percent, words_per_thread, learning_rate = match.groups()
        self.million_words_per_second = int(words_per_thread) * self.threads / 1e6
        now, finished = time.monotonic(), float(percent) >= 100.0
        if (finished and not self._finished) or (not finished and now - self._last_emitted >= 1.0):
            self._last_emitted, self._finished = now, finished
            # the schedule overshoots zero by a hair at the end; BlazingText shows 0.0000
            alpha = max(0.0, float(learning_rate))
            log(f"##### Alpha: {alpha:.4f}  Progress: {min(float(percent), 100.0):.2f}%  "
                f"Million Words/sec: {self.million_words_per_second:.2f} #####")


@contextlib.contextmanager
def _zero_filled_allocations(hyperparameters: Hyperparameters) -> Iterator[None]:
    """Work around uninitialised embeddings in this fastText build.

    fastText >= 2024 (the source of ``fasttext-numpy2``) allocates matrices with
    ``posix_memalign`` and, as ever, randomises only ``thread``/10 of the input matrix; the
    rest keeps whatever the allocator returns. A large matrix comes from fresh ``mmap``
    pages (zeros, the behaviour fastText always had), but a small one -- ``word_ngrams=1``
    means no hash buckets -- can reuse freed heap memory, and garbage there ends training
    with "Encountered NaN." at random, even at tiny learning rates. glibc's ``M_PERTURB``
    with 0xFF makes every allocation start zero-filled (255 ^ 0xFF), so the small case
    behaves like the large one. It is enabled only for small matrices, where the extra
    memset is free; 64 MiB is past glibc's largest dynamic mmap threshold (32 MiB)."""
    bucket_bytes = hyperparameters.buckets * hyperparameters.vector_dim * 4
    small_matrix = hyperparameters.word_ngrams <= 1 or bucket_bytes < 64 << 20
    mallopt = None
    if small_matrix and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            mallopt = ctypes.CDLL("libc.so.6").mallopt
    m_perturb = -6
    if mallopt is not None:
        mallopt(m_perturb, 0xFF)
    try:
        yield
    finally:
        if mallopt is not None:
            mallopt(m_perturb, 0)


def _in_forked_child(work: Callable[[], str]) -> tuple[int, int] | None:
    """Run ``work`` in a forked child, which shares the trained model copy-on-write;
    returns the child's pid and a pipe that delivers ``work()``'s result, or None when
    no child can be forked here (the caller then does the work itself)."""
    if not hasattr(os, "fork"):
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # e.g. a process limit in the sandbox
        os.close(read_end)
        os.close(write_end)
        return None
    if pid != 0:
        os.close(write_end)
        return pid, read_end
    os.close(read_end)
    status = 1  # child: work, then leave without running the parent's cleanup handlers
    try:
        os.write(write_end, work().encode())
        status = 0
    except BaseException as error:  # noqa: BLE001 - the parent notices the status
        print(f"BlazingText worker process failed: {error}", file=sys.stderr, flush=True)
    os._exit(status)


def _collect(child: tuple[int, int] | None) -> str | None:
    """A forked child's result; None if it failed or never started."""
    if child is None:
        return None
    pid, read_end = child
    with os.fdopen(read_end, "rb") as pipe:
        result = pipe.read().decode()
    return result if os.waitpid(pid, 0)[1] == 0 else None


def _split_lines(path: Path, parts: int, scratch: Path) -> list[Path]:
    """Cut a file into ``parts`` pieces at line boundaries, for testing in parallel."""
    size, pieces, start = path.stat().st_size, [], 0
    with path.open("rb") as source:
        for index in range(1, parts + 1):
            source.seek(max(start, size * index // parts))
            source.readline()  # finish the line the cut falls into
            end = size if index == parts else source.tell()
            if end <= start:
                continue
            piece = scratch / f"{path.stem}.part{index}"
            with piece.open("wb") as out:
                source.seek(start)
                while start < end:
                    start += out.write(source.read(min(end - start, 1 << 20)))
            pieces.append(piece)
    return pieces


def _test_counts(model: Any, path: Path) -> str:
    """fastText's test() as "examples correct" (precision@1 x examples), which add up."""
    examples, precision_at_1, _recall = model.test(str(path))
    return f"{examples} {round(precision_at_1 * examples) if examples else 0}"


def evaluate_and_save(model: Any, channels: dict[str, Path], model_path: Path, workers: int,
                      scratch: Path) -> None:
    """Report accuracy per channel and save the model, spread over the job's cores.

    After training the cores are idle, and test() and save_model() each hold one core
    (and the GIL), so the save runs in a forked child while each channel's test is split
    across the other processes; a file of a few MB is tested in one piece."""
    parallel = workers > 1
    saver = _in_forked_child(lambda: model.save_model(str(model_path)) or "") if parallel else None
    for channel, path in channels.items():
        split = parallel and path.stat().st_size > 4 << 20
        pieces = (_split_lines(path, workers, scratch) if split else []) or [path]
        helpers = [_in_forked_child(lambda piece=piece: _test_counts(model, piece)) for piece in pieces[1:]]
        counts = [_test_counts(model, pieces[0])] + [
            _collect(helper) or _test_counts(model, piece)  # a helper failed: test its piece here
            for helper, piece in zip(helpers, pieces[1:])
        ]
        examples, correct = (sum(int(count.split()[i]) for count in counts) for i in (0, 1))
        log(f"#{channel}_accuracy: {correct / examples if examples else float('nan'):.4f}")
        log(f"Number of {channel} examples: {examples}")
    if _collect(saver) is None:
        model.save_model(str(model_path))  # no child, or it failed: save here


# ---------------------------------------------------------------- main


def main() -> None:
    hyperparameters = parse_hyperparameters(container.read_hyperparameters())
    channels = container.channel_names(container.read_input_data_config())
    if "train" not in channels:
        raise UserError("Missing required channel 'train' (fastText-format text files).")
    train_files = _channel_files("train")
    validation_files = _channel_files("validation") if "validation" in channels else []
    if hyperparameters.early_stopping and not validation_files:
        raise UserError("Hyperparameter early_stopping=True needs a 'validation' channel.")

    import fasttext  # imported here so hyperparameter errors surface without its import cost

    threads = container.num_cpus()
    model_path = container.model_dir() / "model.bin"
    model_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as scratch_files:
        train_path = scratch_files.enter_context(_single_file(train_files))
        validation_path = scratch_files.enter_context(_single_file(validation_files)) if validation_files else None
        if hyperparameters.early_stopping:
            log(f"early_stopping=True: fastText cannot evaluate between epochs, so all "
                f"{hyperparameters.epochs} epochs run; patience and min_epochs are not applied.")
        log(f"Using {threads} threads for training")
        started = time.monotonic()
        try:
            with _zero_filled_allocations(hyperparameters), _ProgressRelay(threads) as progress:
                model = fasttext.train_supervised(
                    input=str(train_path),
                    epoch=hyperparameters.epochs,
                    lr=hyperparameters.learning_rate,
                    minCount=hyperparameters.min_count,
                    dim=hyperparameters.vector_dim,
                    wordNgrams=hyperparameters.word_ngrams,
                    bucket=hyperparameters.buckets,
                    thread=threads,
                    verbose=2,
                )
        except (RuntimeError, ValueError) as error:
            hint = " Try a smaller learning_rate." if "NaN" in str(error) else ""
            raise UserError(f"fastText training failed: {error}{hint}") from None
        log("Training finished.")
        log(f"Average throughput in Million words/sec: {progress.million_words_per_second:.2f}")
        log(f"Total training time in seconds: {time.monotonic() - started:.2f}")

        evaluated = {"train": train_path} | ({"validation": validation_path} if validation_path else {})
        evaluate_and_save(model, evaluated, model_path, threads,
                          Path(scratch_files.enter_context(tempfile.TemporaryDirectory(prefix="blazingtext-"))))
    log(f"Saved model to {model_path}")


if __name__ == "__main__":
    container.run_main(main)
