"""A clone is self-contained: no tracked document links outside the repository or to a missing
file, and no comment or docstring cites a document the repository does not hold."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Inline links and images ``[text](target "title")`` and reference definitions ``[id]: target``.
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.MULTILINE)
#: A document cited by name in any text: ``docs/deploy.md``, ``README.md``, ``../x/STYLE.md``.
CITED_DOCUMENT = re.compile(r"(?<![\w./-])((?:\.{1,2}/)*[\w.-]+(?:/[\w.-]+)*\.md)\b")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
TEXT_SUFFIXES = {
    ".md", ".py", ".sql", ".yml", ".yaml", ".toml", ".cfg", ".txt", ".sh", ".in", ".html",
    ".example", ".j2",
}  # fmt: skip
TEXT_NAMES = {"Makefile", "run", ".sqlfluff", ".gitignore", ".env.example"}


def tracked_files(root: Path) -> list[Path]:
    """The files a clone holds: git's index when ``root`` is a repository, else every file."""
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z"], capture_output=True, text=True, check=False
    )
    if listed.returncode == 0 and listed.stdout:
        return [root / name for name in listed.stdout.split("\0") if name]
    return [p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    body = FENCE.sub("", markdown)
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", body, re.MULTILINE)}


def inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def link_problems(root: Path, files: list[Path]) -> list[str]:
    """Every Markdown link that leaves the repository, names a missing file or a missing
    heading, as ``file: target (why)``."""
    problems = []
    for doc in (f for f in files if f.suffix == ".md"):
        text = doc.read_text(encoding="utf-8")
        body = FENCE.sub("", text)
        targets = INLINE_LINK.findall(body) + REFERENCE_LINK.findall(body)
        for target in targets:
            if EXTERNAL.match(target):
                continue
            path_part, _, anchor = target.partition("#")
            where = f"{doc.relative_to(root)}: {target}"
            dest = (doc.parent / path_part) if path_part else doc
            if path_part.startswith("/") or not inside(root, dest):
                problems.append(f"{where} (outside the repository)")
            elif not dest.exists():
                problems.append(f"{where} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
                problems.append(f"{where} (no heading #{anchor})")
    return problems


def citation_problems(root: Path, files: list[Path]) -> list[str]:
    """Every ``*.md`` document cited in a tracked text file (a docstring, a comment, prose)
    that the repository does not hold, as ``file:line: name``. A bare name may be any tracked
    document of that name; a path is read from the citing file's folder or any folder above it
    up to the repository root (``models/docs.md`` in a dbt model means the dbt project's)."""
    held = {f.resolve() for f in files}
    names = {f.name for f in files}
    problems = []
    for source in files:
        if source.suffix not in TEXT_SUFFIXES and source.name not in TEXT_NAMES:
            continue
        try:
            lines = source.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(lines, 1):
            for cited in CITED_DOCUMENT.findall(line):
                if "/" not in cited:
                    ok = cited in names
                else:
                    folders = [source.parent, *source.parent.parents]
                    candidates = [f / cited for f in folders if inside(root, f)]
                    ok = any(inside(root, c) and c.resolve() in held for c in candidates)
                if not ok:
                    problems.append(f"{source.relative_to(root)}:{number}: {cited}")
    return problems


def test_no_tracked_document_links_outside_the_repository_or_to_a_missing_file():
    assert link_problems(ROOT, tracked_files(ROOT)) == []


def test_no_comment_or_docstring_cites_a_document_the_repository_does_not_hold():
    here = Path(__file__).resolve()  # its fixtures cite missing documents on purpose
    files = [f for f in tracked_files(ROOT) if f.resolve() != here]
    assert citation_problems(ROOT, files) == []


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# The guide\n\n## Set up\n")
    (tmp_path / "README.md").write_text("# Readme\n")
    return tmp_path


@pytest.mark.parametrize(
    ("markdown", "problem"),
    [
        ("[design](../outside/design/NOTES.md)", "outside the repository"),
        ("[abs](/etc/passwd)", "outside the repository"),
        ("[gone](docs/missing.md)", "no such file"),
        ("[bad anchor](docs/guide.md#install)", "no heading #install"),
        ("[notes]\n\n[notes]: ../elsewhere/notes.md", "outside the repository"),
    ],
)
def test_the_link_check_catches_links_outside_or_missing(repo, markdown, problem):
    doc = repo / "notes.md"
    doc.write_text(f"# Notes\n\nSee [ok](docs/guide.md#set-up) and {markdown}\n")
    files = [doc, repo / "docs" / "guide.md", repo / "README.md"]
    found = link_problems(repo, files)
    assert len(found) == 1 and problem in found[0], found


def test_the_link_check_accepts_web_links_anchors_and_fenced_examples(repo):
    doc = repo / "notes.md"
    doc.write_text(
        "# Notes\n\n[web](https://example.com/x.md) [here](#notes) [up](README.md)\n"
        "```\n[not a link](../outside.md)\n```\n"
    )
    assert link_problems(repo, [doc, repo / "README.md"]) == []


def test_the_citation_check_catches_documents_the_repository_does_not_hold(repo):
    code = repo / "job.py"
    code.write_text(
        '"""Three layers (STYLE.md, item 10); see docs/guide.md and README.md."""\n'
        "# the budget (../outside/design/plan.md, section 6)\n"
    )
    files = [code, repo / "docs" / "guide.md", repo / "README.md"]
    assert citation_problems(repo, files) == [
        "job.py:1: STYLE.md",
        "job.py:2: ../outside/design/plan.md",
    ]


#: A path into one of the project's folders, anywhere in prose or code.
REPO_PATH = re.compile(
    r"(?<![\w./-])((?:peak|glue|ingestion|activation|dashboard|contracts|generator|tests|bench|"
    r"tools|infra|dbt_project|docs)/[\w./-]*\w\.(?:py|sql|yml|yaml|md|txt|sh|toml|json|in))\b"
)
#: Folders the project's runs write into (git-ignored): a path there need not exist in a clone.
GENERATED = ("bench/out/", "dbt_project/target/", "dist/", "lake/")
#: A dotted name of our code in backticks: ``peak.core.lake.Lake``, :func:`glue.job.main`.
DOTTED = re.compile(
    r"`+~?((?:peak|glue|ingestion|activation|dashboard|contracts|generator)(?:\.\w+)+)(?:\(\))?`+"
)


def _defines(module: Path, name: str) -> bool:
    text = module.read_text(encoding="utf-8")
    return bool(
        re.search(rf"^\s*(?:async\s+)?(?:def|class)\s+{name}\b", text, re.MULTILINE)
        or re.search(rf"^\s*{name}\s*[:=]", text, re.MULTILINE)
        or re.search(rf"^\s*(?:from\s+\S+\s+)?import\s.*\b{name}\b", text, re.MULTILINE)
        or re.search(rf"^\s+{name}\s*[:=]", text, re.MULTILINE)  # a class attribute or field
        or re.search(rf"^\s+{name},?\s*$", text, re.MULTILINE)  # one of a parenthesised import
        or re.search(rf"def {name}\b|\b{name}\s*=", text)
    )


def dotted_problem(root: Path, dotted: str) -> str | None:
    """Why ``dotted`` names nothing in the repository (None when it resolves): each part is a
    package, then a module, then a name the module defines."""
    parts = dotted.split(".")
    here = root / parts[0]
    module: Path | None = here / "__init__.py"
    for i, part in enumerate(parts[1:], 1):
        if (here / part).is_dir() and (here / part / "__init__.py").exists():
            here, module = here / part, here / part / "__init__.py"
        elif (here / f"{part}.py").exists():
            here, module = here / part, here / f"{part}.py"
            if i + 1 < len(parts) and not _defines(module, parts[i + 1]):
                return f"{'.'.join(parts[: i + 2])} is not defined"
            return None
        elif module is not None and module.exists() and _defines(module, part):
            return None
        else:
            return f"no module {'.'.join(parts[: i + 1])}"
    return None


def reference_problems(root: Path, files: list[Path]) -> list[str]:
    """Every path into the project and every dotted name of its code, in any tracked text, that
    no longer exists (a file moved or split, a function renamed)."""
    problems = []
    for source in files:
        if source.suffix not in TEXT_SUFFIXES and source.name not in TEXT_NAMES:
            continue
        try:
            lines = source.read_text(encoding="utf-8").splitlines()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        for number, line in enumerate(lines, 1):
            where = f"{source.relative_to(root)}:{number}"
            for path in REPO_PATH.findall(line):
                if path.startswith(GENERATED):  # written by runs, git-ignored
                    continue
                if not (root / path).exists():
                    problems.append(f"{where}: {path}")
            for dotted in DOTTED.findall(line):
                why = dotted_problem(root, dotted)
                if why:
                    problems.append(f"{where}: {dotted} ({why})")
    return problems


#: Records of the past, which name files as they were then.
HISTORY = {"CHANGELOG.md", "docs/adr/0007-layers-inside-peak.md"}


def test_every_path_and_dotted_name_in_the_docs_and_code_exists():
    here = Path(__file__).resolve()
    files = [
        f
        for f in tracked_files(ROOT)
        if f.resolve() != here and f.relative_to(ROOT).as_posix() not in HISTORY
    ]
    assert reference_problems(ROOT, files) == []


def test_the_reference_check_catches_moved_files_and_renamed_names(tmp_path):
    (tmp_path / "peak" / "core").mkdir(parents=True)
    (tmp_path / "peak" / "__init__.py").write_text("")
    (tmp_path / "peak" / "core" / "__init__.py").write_text("")
    (tmp_path / "peak" / "core" / "lake.py").write_text("class Lake:\n    pass\n")
    doc = tmp_path / "notes.md"
    doc.write_text(
        "`peak.core.lake.Lake` and peak/core/lake.py are fine;\n"
        "`peak.lake.Lake`, peak/lake.py and :func:`peak.core.lake.exclusive` moved.\n"
    )
    assert reference_problems(tmp_path, [doc]) == [
        "notes.md:2: peak/lake.py",
        "notes.md:2: peak.lake.Lake (no module peak.lake)",
        "notes.md:2: peak.core.lake.exclusive (peak.core.lake.exclusive is not defined)",
    ]
