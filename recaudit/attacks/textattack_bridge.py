"""Make TextAttack importable offline, and import it only when an attack needs it.

``import textattack`` fails without network unless NLTK finds the ``stopwords`` corpus, and
TextAttack's WordNet swap needs the ``wordnet`` corpus. Both are written into a
recaudit-owned NLTK data folder (never NLTK's global one):

- ``corpora/stopwords/english`` from scikit-learn's ``ENGLISH_STOP_WORDS`` (installed with the
  stack, so always available);
- ``corpora/wordnet/`` by *copying* the plain files of Debian's ``wordnet-base`` and
  ``wordnet-sense-index`` packages (``/usr/share/wordnet``; NLTK 3.10 rejects symlinks that leave
  its root) and writing the ``lexnames`` file Debian does not ship (the standard WordNet 3.0
  lexicographer file list). Without those packages WordNet attacks are reported unavailable,
  naming ``apt-get install wordnet-base wordnet-sense-index``.

``NLTK_DATA`` is set before TextAttack (and NLTK) are imported, and ``load_textattack`` imports
TextAttack lazily, because the import costs seconds and the package is optional
(``pip install recaudit[attacks]``).
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

DEBIAN_WORDNET = Path("/usr/share/wordnet")
WORDNET_INSTALL_HINT = "apt-get install wordnet-base wordnet-sense-index"
TEXTATTACK_INSTALL_HINT = "pip install 'recaudit[attacks]' (textattack==0.3.11, flair==0.15.1)"

# WordNet 3.0 lexicographer files: (number, name, syntactic category 1=noun 2=verb 3=adj 4=adv).
_LEXNAMES = (
    ["adj.all", "adj.pert", "adv.all"]
    + [
        "noun." + n
        for n in (
            "Tops act animal artifact attribute body cognition communication event feeling food group "
            "location motive object person phenomenon plant possession process quantity relation shape "
            "state substance time"
        ).split()
    ]
    + [
        "verb." + v
        for v in (
            "body change cognition communication competition consumption contact creation emotion motion "
            "perception possession social stative weather"
        ).split()
    ]
    + ["adj.ppl"]
)
_POS_OF = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}

_lock = threading.Lock()
_textattack: ModuleType | None = None


@dataclass(frozen=True)
class NltkData:
    """Where recaudit's NLTK data lives and which corpora it holds."""

    root: Path
    stopwords: bool
    wordnet: bool
    wordnet_reason: str = ""


def nltk_data_dir() -> Path:
    """recaudit's NLTK data folder: $RECAUDIT_NLTK_DATA, else <user cache>/recaudit/nltk_data."""
    explicit = os.environ.get("RECAUDIT_NLTK_DATA")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "recaudit" / "nltk_data"


def lexnames_text() -> str:
    """The 45-line WordNet 3.0 ``lexnames`` file (``NN<TAB>name<TAB>pos``)."""
    return "".join(f"{i:02d}\t{name}\t{_POS_OF[name.split('.')[0]]}\n" for i, name in enumerate(_LEXNAMES))


def _write_stopwords(root: Path) -> None:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    target = root / "corpora" / "stopwords" / "english"
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text("".join(w + "\n" for w in sorted(ENGLISH_STOP_WORDS)), encoding="utf-8")
    tmp.replace(target)  # atomic: concurrent processes never see a half-written corpus


def _copy_wordnet(root: Path, source: Path) -> tuple[bool, str]:
    target = root / "corpora" / "wordnet"
    if (target / "lexnames").exists() and (target / "data.noun").exists():
        return True, ""
    if not (source / "data.noun").exists():
        return False, f"WordNet is not installed ({source}/data.noun missing); run `{WORDNET_INSTALL_HINT}`"
    staging = root / "corpora" / f".wordnet-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for f in sorted(source.iterdir()):
        if f.is_file():  # plain files only: bin/, pixmaps/ and wnres/ are the GUI's
            shutil.copyfile(f, staging / f.name)
    (staging / "lexnames").write_text(lexnames_text(), encoding="utf-8")
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)  # an incomplete copy from an interrupted run
    try:
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another process finished first
        if not (target / "lexnames").exists():
            return False, f"could not copy WordNet into {target}"
    return True, ""


def prepare_nltk_data(root: Path | None = None, wordnet_source: Path | None = None) -> NltkData:
    """Write the stopwords corpus and copy WordNet (when installed) into ``root``; put it on NLTK's path."""
    root = Path(root) if root is not None else nltk_data_dir()
    wordnet_source = Path(wordnet_source) if wordnet_source is not None else DEBIAN_WORDNET
    root.mkdir(parents=True, exist_ok=True)
    _write_stopwords(root)
    wordnet, reason = _copy_wordnet(root, wordnet_source)
    paths = [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    if str(root) not in paths:
        os.environ["NLTK_DATA"] = os.pathsep.join([str(root), *paths])
    import sys

    if "nltk" in sys.modules:  # NLTK read NLTK_DATA at import; tell it directly too
        import nltk

        if str(root) not in nltk.data.path:
            nltk.data.path.insert(0, str(root))
    return NltkData(root=root, stopwords=True, wordnet=wordnet, wordnet_reason=reason)


def textattack_available() -> tuple[bool, str]:
    """Whether TextAttack is installed (without importing it), and why not."""
    import importlib.util

    if importlib.util.find_spec("textattack") is None:
        return False, f"textattack is not installed; run `{TEXTATTACK_INSTALL_HINT}`"
    return True, ""


def _skip_post_install_downloads() -> None:
    """Mark TextAttack's one-time post-install step as done.

    On its first import TextAttack calls ``nltk.download`` for six corpora (network) and then
    writes ``post_install_check_3`` in its cache folder. recaudit supplies the corpora it uses
    itself (above), so the marker is written first and no download is attempted. TA_CACHE_DIR is
    read but never set here: setting it makes TextAttack overwrite HF_HOME and XDG_CACHE_HOME.
    """
    cache = Path(os.environ.get("TA_CACHE_DIR") or Path.home() / ".cache" / "textattack")
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "post_install_check_3").touch()


def load_textattack() -> ModuleType:
    """Prepare NLTK data, then import TextAttack once per process (ImportError names the install command)."""
    global _textattack
    with _lock:
        if _textattack is None:
            ok, reason = textattack_available()
            if not ok:
                raise ImportError(reason)
            prepare_nltk_data()
            _skip_post_install_downloads()
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import textattack

            _textattack = textattack
    return _textattack


def wordnet_status() -> tuple[bool, str]:
    """Whether NLTK can read WordNet from recaudit's data folder, and why not."""
    data = prepare_nltk_data()
    return data.wordnet, data.wordnet_reason
