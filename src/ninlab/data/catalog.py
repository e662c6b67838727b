"""The data sets ninlab knows, where their files are looked for, and how they are loaded; a
name that is a path is a folder of the user's own images (ninlab.data.folders).

Search order for every file: `data_dir` (the `--data-dir` option or the NINLAB_DATA variable), the
Debian package's directory /usr/share/datasets/<name>, the user cache ~/.cache/ninlab/<name>, and
finally a download from the data set's official address into the cache. Files found in the Debian
directory or the cache, and every download, are checked against the SHA-256 of their
*decompressed* content (Debian's .gz files differ from the originals only in the gzip header).
Files in a directory the user names are checked for format only, so a user may bring a subset.

Nothing is inflated past a bound known before it is read: a file may hold at most what the
published file holds (`DatasetSpec.most_bytes`, from the published counts of examples), an IDX
header must promise no more, and its .gz is inflated no further than the header promises
(ninlab.data.inflate). Archives are read header by header: a member larger than the data set's
file, more than MAX_MEMBERS members or more than TAR_HEADERS bytes of headers (pax records, long
names) are refused before the data is read, so a bomb costs a second, not the disk or the memory.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import torch

from ninlab.data.dataset import Dataset
from ninlab.data.folders import FolderOptions, is_folder_name, load_folder
from ninlab.data.idx import parse_idx, promised
from ninlab.data.inflate import Limit, read_bytes
from ninlab.errors import NinlabError

FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
MNIST_CLASSES = tuple(str(d) for d in range(10))
KMNIST_CLASSES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR100_CLASSES = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
    butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab
    crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard
    lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom
    oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine
    possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake
    spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor
    train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split()
)

MAX_MEMBERS = 64  # members of an archive (CIFAR-10's has 9 with its folder, CIFAR-100's 5)
OTHER_MEMBER = 2**20  # bytes of a member that ninlab does not extract (readme.html, *.meta.txt)
MAX_MEMBER = 2**28  # bytes of any member, when the caller gives no sizes (cifar-100: 153.7 MB)
TAR_HEADERS = 2**20  # bytes of all tar headers together: 512 a member in a data set's archive

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class DatasetSpec:
    """What ninlab needs to know to find, check and load one data set."""

    name: str
    format: str  # "idx" or "cifar"
    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]  # C, H, W
    urls: tuple[str, ...]  # base addresses (idx: + file name + ".gz") or archive addresses (cifar)
    examples: tuple[int, int]  # (train, test) images in the published files
    sha256: dict[str, str]  # decompressed file name -> SHA-256 of its content
    apt_package: str | None = None
    # cifar only: member files per split, the folder inside the archive, label bytes per record
    members: dict[str, tuple[str, ...]] = field(default_factory=dict)
    archive_dir: str = ""
    label_bytes: int = 1
    archive_sha256: str | None = None
    # SHA-256 of the original .gz files, for downloads of sets whose decompressed hashes are not
    # published (KMNIST); sources: tensorflow/datasets url_checksums
    gz_sha256: dict[str, str] = field(default_factory=dict)

    def files(self) -> list[str]:
        if self.format == "idx":
            return [f for pair in IDX_FILES.values() for f in pair]
        return [m for ms in self.members.values() for m in ms]

    def most_bytes(self, fname: str) -> int:
        """Bytes of the published file `fname` once decompressed, the most a copy may hold (a
        user may bring a subset, not more): IDX images 4 + 4 * 3 + N * H * W (Fashion-MNIST's
        train-images 16 + 60,000 * 784 = 47,040,016), labels 4 + 4 + N; a CIFAR file N / files
        records of label_bytes + 3 * 32 * 32 (CIFAR-10's data_batch_1.bin 10,000 * 3,073)."""
        c, h, w = self.image_shape
        if self.format == "idx":
            for n, (images, labels) in zip(self.examples, IDX_FILES.values(), strict=True):
                if fname == images:
                    return 16 + n * h * w
                if fname == labels:
                    return 8 + n
        for n, members in zip(self.examples, self.members.values(), strict=True):
            if fname in members:
                return n // len(members) * (self.label_bytes + c * h * w)
        raise KeyError(f"{fname} is not a file of {self.name}")

    def limit(self, fname: str) -> Limit:
        """`most_bytes` as the bound of a read, with the words of its refusal."""
        return Limit(
            self.most_bytes(fname),
            f"the published {self.name} file {fname}",
            "replace it with the published file (this one is corrupt or from another data set)",
        )


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec(
            name="fashion-mnist",
            format="idx",
            classes=FASHION_CLASSES,
            image_shape=(1, 28, 28),
            examples=(60_000, 10_000),
            urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
            sha256={
                "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            },  # fmt: skip
            apt_package="dataset-fashion-mnist",
        ),
        DatasetSpec(
            name="mnist",
            format="idx",
            classes=MNIST_CLASSES,
            image_shape=(1, 28, 28),
            examples=(60_000, 10_000),
            urls=(
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "http://yann.lecun.com/exdb/mnist/",
            ),
            sha256={
                "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            },  # fmt: skip
        ),
        DatasetSpec(
            name="kmnist",
            format="idx",
            classes=KMNIST_CLASSES,
            image_shape=(1, 28, 28),
            examples=(60_000, 10_000),
            urls=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
            sha256={},
            gz_sha256={
                "train-images-idx3-ubyte": "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
                "train-labels-idx1-ubyte": "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
                "t10k-images-idx3-ubyte": "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
                "t10k-labels-idx1-ubyte": "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
            },  # fmt: skip
        ),
        DatasetSpec(
            name="cifar10",
            format="cifar",
            classes=CIFAR10_CLASSES,
            image_shape=(3, 32, 32),
            examples=(50_000, 10_000),
            urls=("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
            sha256={
                "data_batch_1.bin": "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5",
                "data_batch_2.bin": "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed",
                "data_batch_3.bin": "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67",
                "data_batch_4.bin": "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48",
                "data_batch_5.bin": "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add",
                "test_batch.bin": "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b",
            },  # fmt: skip
            archive_sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
            members={
                "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
                "test": ("test_batch.bin",),
            },
            archive_dir="cifar-10-batches-bin",
        ),
        DatasetSpec(
            name="cifar100",
            format="cifar",
            classes=CIFAR100_CLASSES,
            image_shape=(3, 32, 32),
            examples=(50_000, 10_000),
            urls=("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",),
            sha256={
                "train.bin": "f31298fc616915fa142368359df1c4ca2ae984d6915ca468b998a5ec6aeebf29",
                "test.bin": "d8b1e6b7b3bee4020055f0699b111f60b1af1e262aeb93a0b659061746f8224a",
            },  # fmt: skip
            archive_sha256="58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",
            members={"train": ("train.bin",), "test": ("test.bin",)},
            archive_dir="cifar-100-binary",
            label_bytes=2,  # coarse label, then fine label
        ),
    ]
}


def get_spec(name: str) -> DatasetSpec:
    """The built-in data set `name` (a key of DATASETS), or one NinlabError listing them."""
    if name not in DATASETS:
        raise NinlabError(
            f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}, or pass a folder "
            "of images (DIR/class_name/*.png)."
        )
    return DATASETS[name]


def dataset_label(name: str) -> str:
    """A short name for file names and titles: the folder's own name for a folder."""
    return name if name in DATASETS else Path(name).expanduser().resolve().name


def search_dirs(spec: DatasetSpec, data_dir: str | Path | None = None) -> list[tuple[Path, bool]]:
    """Directories to look in, in order, each with whether its files are hash-checked."""
    data_dir = data_dir or os.environ.get("NINLAB_DATA")
    dirs = []
    if data_dir:
        data_dir = Path(data_dir).expanduser()
        if not data_dir.is_dir():
            raise NinlabError(
                f"data directory {data_dir} does not exist; create it or fix the path."
            )
        dirs += [(data_dir / spec.name, False), (data_dir, False)]
    dirs.append((Path("/usr/share/datasets") / spec.name, True))
    dirs.append((cache_dir(spec), True))
    return dirs


def cache_dir(spec: DatasetSpec) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "ninlab" / spec.name


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_hash(spec: DatasetSpec, fname: str, data: bytes, where: Path) -> None:
    expected = spec.sha256.get(fname)
    if expected and _sha256(data) != expected:
        raise NinlabError(
            f"{where} does not match the published {spec.name} file (SHA-256 of its content "
            f"differs); delete it so that ninlab fetches a fresh copy."
        )


def _find_file(spec: DatasetSpec, fname: str, dirs: list[tuple[Path, bool]]):
    """(bytes, path) of the first readable copy of `fname` (raw, .gz, or in the archive folder)."""
    for d, checked in dirs:
        for candidate in (d / fname, d / (fname + ".gz"), d / spec.archive_dir / fname):
            if candidate.is_file():
                data = _read(spec, fname, candidate)
                if checked:
                    _check_hash(spec, fname, data, candidate)
                return data, candidate
    return None, None


def _read(spec: DatasetSpec, fname: str, path: Path) -> bytes:
    """The content of a copy of `fname`, within the published file's size (and, for an IDX
    file, within what its header promises)."""
    promise = (lambda head: promised(head, str(path))) if spec.format == "idx" else None
    return read_bytes(path, spec.limit(fname), promise)


def _download(url: str, dest: Path) -> None:
    """Stream `url` to `dest` through a temporary file in the same folder, then rename. A failed
    download leaves no folder behind that it created."""
    made = [d for d in (dest.parent, *dest.parent.parents) if not d.exists()]  # deepest first
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as r:
            shutil.copyfileobj(r, out)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if not dest.exists():
            for d in made:
                with contextlib.suppress(OSError):  # not empty: another file lives there
                    d.rmdir()


def download(spec: DatasetSpec) -> list[str]:
    """Fetch the data set into the cache; returns what failed (empty when all went well)."""
    cache = cache_dir(spec)
    failures = []
    if spec.format == "idx":
        for fname in spec.files():
            if (cache / (fname + ".gz")).is_file():
                continue
            errors = []
            for base in spec.urls:
                try:
                    _download(base + fname + ".gz", cache / (fname + ".gz"))
                    gz_hash = spec.gz_sha256.get(fname)
                    if gz_hash and _sha256((cache / (fname + ".gz")).read_bytes()) != gz_hash:
                        raise NinlabError("the download does not match its published SHA-256")
                    data = _read(spec, fname, cache / (fname + ".gz"))
                    _check_hash(spec, fname, data, cache / (fname + ".gz"))
                    break
                except (urllib.error.URLError, OSError, ValueError, NinlabError) as e:
                    (cache / (fname + ".gz")).unlink(missing_ok=True)
                    errors.append(f"{base}{fname}.gz ({getattr(e, 'reason', e)})")
            if len(errors) == len(spec.urls):
                return errors  # every mirror failed: the rest would fail the same way
        return failures
    for url in spec.urls:
        archive = cache / url.rsplit("/", 1)[-1]
        try:
            _download(url, archive)
            if spec.archive_sha256 and _sha256(archive.read_bytes()) != spec.archive_sha256:
                raise NinlabError(f"{url} does not match its published SHA-256")
            _extract(archive, cache, {f: spec.most_bytes(f) for f in spec.files()})
            archive.unlink()
            return []
        except (urllib.error.URLError, OSError, ValueError, tarfile.TarError, NinlabError) as e:
            archive.unlink(missing_ok=True)
            failures.append(f"{url} ({getattr(e, 'reason', e)})")
    return failures


class _HeaderReads:
    """A file object for tarfile whose reads, while `budget` is set, may total at most that
    many bytes: tarfile reads headers through it (512 bytes a member, and pax or long-name
    records whole, however long their header says they are), and skips members' data by seek."""

    def __init__(self, f, budget: int):
        self.f, self.budget = f, budget

    def read(self, n: int = -1) -> bytes:
        if self.budget is not None:
            if n is None or n < 0 or n > self.budget:
                raise _TooMuchHeader
            self.budget -= n
        return self.f.read(n)

    def seek(self, *args) -> int:
        return self.f.seek(*args)

    def tell(self) -> int:
        return self.f.tell()


class _TooMuchHeader(Exception):
    """Raised inside tarfile when its headers pass TAR_HEADERS bytes."""


def _extract(archive: Path, dest: Path, names) -> list[Path]:
    """Extract the regular files of tar `archive` whose file name is in `names` into `dest`;
    returns their paths. `names` may map each name to the most bytes it may have (else
    MAX_MEMBER); any other member may have OTHER_MEMBER. The whole archive is refused, each
    member as soon as its header is read (before its data), if a member is larger, a link, a
    device, sparse, or has an absolute path or a `..` component (it could write outside `dest`;
    tarfile's "data" filter would stop most of them too), if it has more than MAX_MEMBERS
    members, or more than TAR_HEADERS bytes of headers: no data set's archive has such a one."""
    sizes = dict(names) if isinstance(names, dict) else dict.fromkeys(names, MAX_MEMBER)
    opener = gzip.open if archive.suffix == ".gz" else open
    try:
        with opener(archive, "rb") as raw:
            f = _HeaderReads(raw, TAR_HEADERS)
            with tarfile.open(fileobj=f, mode="r:") as tar:
                wanted = []
                for k, m in enumerate(tar):  # the next header is read after this one's checks
                    _check_member(archive, m, k, sizes, isinstance(names, dict))
                    if m.isfile() and PurePosixPath(m.name).name in sizes:
                        wanted.append(m)
                f.budget = None  # the data: read in blocks of 16 KiB, no more than checked
                tar.extractall(dest, members=wanted, filter="data")
    except _TooMuchHeader:
        raise NinlabError(
            f"{archive} has more than {TAR_HEADERS:,} bytes of tar headers (pax records, long "
            "names or sparse maps), which no data set's archive has; delete it, it is not the "
            "published file."
        ) from None
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as e:
        raise NinlabError(
            f"cannot extract {archive} ({' '.join(str(e).split())}); delete it so that ninlab "
            "downloads it again."
        ) from None
    return [dest / m.name for m in wanted]


def _check_member(archive: Path, m: tarfile.TarInfo, k: int, sizes: dict, published: bool):
    """One sentence for the `k`-th member `m` of `archive` that no data set's archive has;
    `sizes` are those of the published files when `published`, else MAX_MEMBER each."""
    path = PurePosixPath(m.name)
    most = sizes.get(path.name, OTHER_MEMBER)
    of = (
        f"the published {path.name}" if path.name in sizes and published
        else "any data set's file" if path.name in sizes
        else "any file besides the data"
    )  # fmt: skip
    why = (
        f"more than {MAX_MEMBERS} members" if k >= MAX_MEMBERS
        else "an absolute path" if m.name.startswith("/") or path.anchor
        else "a '..' component" if ".." in path.parts
        else "a link" if m.issym() or m.islnk()
        else "a device or pipe" if not (m.isfile() or m.isdir())
        else "a sparse file" if m.issparse()
        else f"{m.size:,} bytes, more than the {most:,} of {of}"
        if m.size > most
        else None
    )  # fmt: skip
    if why:
        raise NinlabError(
            f"{archive} has a member with {why} ({m.name!r}), which no data set's archive has; "
            "delete it, it is not the published file."
        )


def _not_found(spec: DatasetSpec, fname: str, dirs, failures: list[str]) -> NinlabError:
    tried = ", ".join(str(d) for d, _ in dirs)
    fix = f"`apt-get install {spec.apt_package}`, or " if spec.apt_package else ""
    got = f"; downloading failed: {'; '.join(failures)}" if failures else ""
    return NinlabError(
        f"cannot find {spec.name} file {fname} in {tried}{got}; to fix: {fix}put the files in a "
        "directory DIR and pass --data-dir DIR (or set NINLAB_DATA=DIR)."
    )


def _read_cifar(spec: DatasetSpec, blobs: list[tuple[bytes, Path]]):
    record = spec.label_bytes + 3 * 32 * 32
    images, labels = [], []
    for data, path in blobs:
        if len(data) == 0 or len(data) % record:
            raise NinlabError(
                f"{path} has {len(data):,} bytes, not a whole number of {record}-byte records; "
                "the file is truncated or corrupt."
            )
        rows = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(-1, record)
        labels.append(rows[:, spec.label_bytes - 1].long())  # the fine label is the last label byte
        images.append(rows[:, spec.label_bytes :].reshape(-1, 3, 32, 32))
    return torch.cat(images), torch.cat(labels)


def _check_labels(spec: DatasetSpec, images, labels, where: str) -> None:
    if len(images) != len(labels):
        raise NinlabError(
            f"{where}: {len(images):,} images but {len(labels):,} labels; the files do not belong "
            "together."
        )
    bad = labels[(labels < 0) | (labels >= len(spec.classes))]
    if bad.numel():
        raise NinlabError(
            f"{where}: label {int(bad[0])} is out of range for {spec.name}, which has "
            f"{len(spec.classes)} classes (0..{len(spec.classes) - 1})."
        )
    if tuple(images.shape[1:]) != spec.image_shape:
        raise NinlabError(
            f"{where}: images are {tuple(images.shape[1:])}, expected {spec.image_shape} for "
            f"{spec.name}."
        )


def load_dataset(
    name: str = "fashion-mnist",
    data_dir: str | Path | None = None,
    download_ok: bool = True,
    folder: FolderOptions | None = None,
    log=None,
    progress: bool = True,
) -> Dataset:
    """Find (or fetch), check and load a whole data set as uint8 tensors. A `name` that is a
    path is a folder of images, read with the `folder` options (`log` gets how, see
    ninlab.data.folders)."""
    if name not in DATASETS and is_folder_name(str(name)):
        return load_folder(name, folder, log=log, progress=progress)
    spec = get_spec(name)
    dirs = search_dirs(spec, data_dir)
    found: dict[str, tuple[bytes, Path]] = {}
    failures: list[str] = []
    for attempt in range(2):
        missing = []
        for fname in spec.files():
            if fname not in found:
                data, path = _find_file(spec, fname, dirs)
                if data is None:
                    missing.append(fname)
                else:
                    found[fname] = (data, path)
        if not missing:
            break
        if attempt == 0 and download_ok:
            failures = download(spec)
        else:
            raise _not_found(spec, missing[0], dirs, failures)
    splits = {}
    for split in ("train", "test"):
        if spec.format == "idx":
            img_name, lab_name = IDX_FILES[split]
            images = parse_idx(found[img_name][0], str(found[img_name][1]))
            labels = parse_idx(found[lab_name][0], str(found[lab_name][1]))
            if images.dim() != 3 or images.dtype != torch.uint8:
                raise NinlabError(
                    f"{found[img_name][1]} holds a {images.dim()}-d array of "
                    f"{str(images.dtype)[6:]}; images need N x H x W unsigned bytes (type 0x08)."
                )
            if labels.dim() != 1 or labels.is_floating_point():
                raise NinlabError(
                    f"{found[lab_name][1]} holds a {labels.dim()}-d array of "
                    f"{str(labels.dtype)[6:]}; labels need N whole numbers."
                )
            images, labels = images.unsqueeze(1), labels.long()
            where = f"{found[img_name][1]} and {found[lab_name][1]}"
        else:
            blobs = [found[m] for m in spec.members[split]]
            images, labels = _read_cifar(spec, blobs)
            where = ", ".join(str(p) for _, p in blobs)
        _check_labels(spec, images, labels, where)
        splits[split] = (images, labels)
    return Dataset(
        name=spec.name,
        classes=spec.classes,
        train_images=splits["train"][0],
        train_labels=splits["train"][1],
        test_images=splits["test"][0],
        test_labels=splits["test"][1],
        sources={f: str(p) for f, (_, p) in found.items()},
    )
