"""The README's commands stay true to the code they describe.

README.md's ```bash blocks are what a newcomer pastes first; a renamed flag, a removed make
target or a moved file breaks them without any test noticing. This test reads every simple
command out of those blocks (a small shell lexer: quotes, comments, continuations, pipes and
``$(...)``) and checks what can be checked without a server:

- ``make T``: the Makefile has a rule for T;
- ``deepclust ...``: the CLI's own parser (typer/click) accepts the command line as written,
  down to a leaf command, with every command's callback replaced by a no-op so nothing runs;
- ``python benchmarks/X.py ...``: the script exists and declares every flag given in its argparse;
- ``curl ... $API/v1/...``: the service's OpenAPI document has that path with that method;
- every path into the repository (a word under one of its tracked top-level folders, or a
  ``.md``/``.py``/``.toml`` file) exists, in the blocks and in the README's inline code.
"""
from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest
import typer

try:  # typer >= 0.22 carries its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - an older typer on the installed click
    from click.exceptions import UsageError

from deepclust.app.cli import app

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
OPERATORS = set(";|&()\n")


# -- reading commands out of shell text ---------------------------------------------------------
def split_commands(text: str) -> list[list[str]]:
    """The simple commands of a shell snippet, each a list of words with the quotes removed.

    Commands end at a newline (unless escaped), ``;``, ``|``, ``&``, ``(`` and ``)`` outside
    quotes, so ``X=$(deepclust a | jq b)`` gives ``["X="]``, ``["deepclust", "a"]`` and
    ``["jq", "b"]``. ``#`` at the start of a word comments out the rest of its line. Variables
    are left as written (``$DS``).
    """
    commands: list[list[str]] = []
    words: list[str] = []
    word: list[str] = []
    in_word = False
    quote: str | None = None
    i = 0

    def end_word():
        nonlocal word, in_word
        if in_word:
            words.append("".join(word))
        word, in_word = [], False

    def end_command():
        nonlocal words
        end_word()
        if words:
            commands.append(words)
        words = []

    while i < len(text):
        c = text[i]
        if quote == "'":
            if c == "'":
                quote = None
            else:
                word.append(c)
        elif quote == '"':
            if c == '"':
                quote = None
            elif c == "\\" and i + 1 < len(text) and text[i + 1] in '"\\$`':
                i += 1
                word.append(text[i])
            elif c == "\\" and text[i + 1:i + 2] == "\n":
                i += 1
            else:
                word.append(c)
        elif c == "\\" and text[i + 1:i + 2] == "\n":
            i += 1  # a continuation line
        elif c == "\\" and i + 1 < len(text):
            i += 1
            word.append(text[i])
            in_word = True
        elif c in "'\"":
            quote, in_word = c, True
        elif c == "#" and not in_word:
            while i < len(text) and text[i] != "\n":
                i += 1
            continue  # the newline ends the command
        elif c == "$" and text[i + 1:i + 2] == "(":
            end_command()  # $( starts a nested command; what came before is its own word list
            i += 1
        elif c in OPERATORS:
            end_command()
        elif c in " \t\r":
            end_word()
        else:
            word.append(c)
            in_word = True
        i += 1
    end_command()
    return commands


def strip_assignments(words: list[str]) -> list[str]:
    """The command without its leading ``NAME=value`` words (environment for one command)."""
    n = 0
    while n < len(words) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[n]):
        n += 1
    return words[n:]


def bash_commands(path: Path) -> list[list[str]]:
    text = path.read_text(encoding="utf-8")
    return [c for block in BASH_BLOCK.findall(text) for c in (strip_assignments(w) for w in split_commands(block)) if c]


# -- what the checks compare against -----------------------------------------------------------
def make_targets() -> set[str]:
    rules = re.findall(r"^([A-Za-z0-9_.$()/-]+(?:\s+[A-Za-z0-9_.-]+)*)\s*::?(?!=)", (REPO / "Makefile").read_text(), re.M)
    return {name for rule in rules for name in rule.split()}


def _command_tree(cmd, path=()):
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _command_tree(sub, (*path, name))


def parse_cli(argv: list[str]) -> tuple[str, ...]:
    """Parse ``deepclust <argv>`` with the CLI's own parser and run nothing: every callback is a
    no-op that records its command. Returns the path of the command the line resolves to;
    ``UsageError`` when the parser refuses it (unknown command or flag, missing argument)."""
    root = typer.main.get_command(app)  # a fresh click tree: replacing callbacks touches only it
    called: list[tuple[str, ...]] = []
    leaves = set()
    for path, cmd in _command_tree(root):
        if not getattr(cmd, "commands", None):
            leaves.add(path)
        cmd.callback = (lambda p: lambda *args, **kwargs: called.append(p))(path)
    root.main(list(argv), prog_name="deepclust", standalone_mode=False)
    if "--help" in argv or "-h" in argv:
        return called[-1] if called else ()
    assert called and called[-1] in leaves, f"deepclust {' '.join(argv)} stops at a group: {called}"
    return called[-1]


def script_flags(script: Path) -> set[str]:
    """Every option string a benchmark script's argparse declares (read from its source)."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    flags = {"-h", "--help"}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name == "add_argument":
            flags |= {a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("-")}
        elif name == "add_data_dir_argument":  # benchmarks/benchdata.py's shared option
            flags.add("--data-dir")
    return flags


def tracked_top_level() -> set[str]:
    try:
        files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):  # not a checkout: what is on disk
        return {p.name for p in REPO.iterdir() if p.name not in {".git", ".venv", "data", "build", "dist"}}
    return {line.split("/")[0] for line in files.splitlines() if line}


REPO_FILE = re.compile(r"^[\w.-]+\.(md|py|toml|cfg|ini|yml|yaml)$")


def repo_paths(words, top: set[str]) -> list[str]:
    """The words that name a path inside the repository."""
    out = []
    for word in words:
        word = word.removeprefix("./")
        if "://" in word or word.startswith(("$", "/", "-", "~")) or "=" in word or "*" in word or "{" in word:
            continue
        path = word.rstrip("/")
        if not path:
            continue
        if ("/" in path and path.split("/")[0] in top) or REPO_FILE.match(path):
            out.append(path)
    return out


# -- the tests -----------------------------------------------------------------------------------
COMMANDS = bash_commands(README)
# The benchmark commands are in the benchmarks' own pages; README.md points there.
BENCHMARK_DOCS = sorted((REPO / "benchmarks").glob("*.md"))


def test_the_readme_has_the_commands_this_test_checks():
    kinds = {c[0] for c in COMMANDS}
    assert {"make", "deepclust"} <= kinds, kinds


@pytest.mark.parametrize("words", [c for c in COMMANDS if c[0] == "make"], ids=" ".join)
def test_make_targets_exist(words):
    targets = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    assert targets, "make without a target"
    missing = [t for t in targets if t not in make_targets()]
    assert not missing, f"Makefile has no target {missing}"


DEEPCLUST = [c[c.index("deepclust"):] for c in COMMANDS if "deepclust" in c and c[0] in ("deepclust", "docker")]


@pytest.mark.parametrize("words", DEEPCLUST, ids=" ".join)
def test_deepclust_command_lines_parse(words, capsys, tmp_path, monkeypatch):
    # The walk-through runs in a scratch folder where it wrote digits.csv, digits-png.zip, ...:
    # the parser checks that a FILE argument exists, so the files it names are made (empty) here.
    monkeypatch.chdir(tmp_path)
    for word in words[1:]:
        if re.match(r"^[\w][\w./-]*\.[A-Za-z]+$", word) and "://" not in word:
            (tmp_path / word).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / word).touch()
    try:
        parse_cli(words[1:])
    except UsageError as exc:
        pytest.fail(f"`{' '.join(words)}` is refused by the CLI's parser: {exc.format_message()}")


PYTHON_SCRIPTS = [c for c in [*COMMANDS, *(c for doc in BENCHMARK_DOCS for c in bash_commands(doc))]
                  if re.match(r"^(\S*/)?python3?$", c[0]) and len(c) > 1 and c[1].startswith("benchmarks/")]


@pytest.mark.parametrize("words", PYTHON_SCRIPTS, ids=" ".join)
def test_benchmark_commands_name_a_script_and_its_flags(words):
    script = REPO / words[1]
    assert script.is_file(), f"no script {words[1]}"
    flags = {w.split("=")[0] for w in words[2:] if w.startswith("-")}
    assert flags <= script_flags(script), f"{words[1]} has no flag {sorted(flags - script_flags(script))}"


CURL = [c for c in COMMANDS if c[0] == "curl"]
LOCAL_URL = re.compile(r"^(?:\$API|https?://(?:127\.0\.0\.1|localhost)(?::\d+)?)(/[^?#]*)")


def curl_request(words: list[str]) -> tuple[str, str] | None:
    """``(METHOD, path)`` of a curl command line against the service, or None for another URL."""
    method, path, body = None, None, False
    for i, word in enumerate(words[1:], 1):
        if word in ("-X", "--request") and i + 1 < len(words):
            method = words[i + 1].upper()
        elif word in ("-d", "--data", "--data-binary", "-F", "--form"):
            body = True
        elif (match := LOCAL_URL.match(word)) and path is None:
            path = match.group(1)
    if path is None:
        return None
    return method or ("POST" if body else "GET"), path


@pytest.fixture(scope="module")
def routes(tmp_path_factory) -> list[tuple[re.Pattern, set[str]]]:
    """The service's paths (as patterns: a ``{param}`` matches one segment) and their methods."""
    from deepclust.app.core.settings import Settings
    from deepclust.app.main import create_app

    spec = create_app(Settings(data_dir=tmp_path_factory.mktemp("data"))).openapi()
    return [(re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path)) + "$"), {m.upper() for m in ops})
            for path, ops in spec["paths"].items()]


@pytest.mark.parametrize("words", CURL, ids=" ".join)
def test_curl_commands_name_a_route(words, routes):
    request = curl_request(words)
    assert request is not None, f"`{' '.join(words)}` calls no URL of the service"
    method, path = request
    concrete = re.sub(r"\$\w+", "x", path)  # $JOB, $MODEL ... stand for one id
    methods = [ops for pattern, ops in routes if pattern.match(concrete)]
    assert methods, f"the API has no path {path} (`{' '.join(words)}`)"
    assert any(method in ops for ops in methods), f"{path} does not take {method} (it takes {methods})"


def test_paths_the_readme_names_exist():
    top = tracked_top_level()
    inline = re.findall(r"`([^`\n]+)`", BASH_BLOCK.sub("", README.read_text(encoding="utf-8")))
    words = [w for c in COMMANDS for w in c] + [w for snippet in inline for w in snippet.split()]
    missing = sorted({p for p in repo_paths(words, top) if not (REPO / p).exists()})
    assert not missing, f"README.md names paths the repository does not have: {missing}"


# -- the checks fail when they should ------------------------------------------------------------
def test_the_lexer_splits_as_a_shell_would():
    text = ('DS=$(deepclust datasets upload d.csv --name "a b" --json | jq -r .id)  # note\n'
            "deepclust jobs start $DS -m dec \\\n  -p maxiter=1500 --wait\n"
            "python -c \"\nprint('x # y')\"\n")
    assert [strip_assignments(c) for c in split_commands(text)] == [
        [], ["deepclust", "datasets", "upload", "d.csv", "--name", "a b", "--json"], ["jq", "-r", ".id"],
        ["deepclust", "jobs", "start", "$DS", "-m", "dec", "-p", "maxiter=1500", "--wait"],
        ["python", "-c", "\nprint('x # y')"]]


def test_a_renamed_flag_or_command_is_caught():
    assert parse_cli(["jobs", "start", "$DS", "-m", "dec", "-k", "10", "--wait"]) == ("jobs", "start")
    for bad in (["jobs", "start", "$DS", "-m", "dec", "--no-such-flag"], ["jobs", "strat", "$DS"],
                ["jobs", "start"]):
        with pytest.raises(UsageError):
            parse_cli(bad)
    reproduce = REPO / "benchmarks" / "reproduce.py"
    assert {"--method", "--dataset", "--data-dir", "--seeds"} <= script_flags(reproduce)
    assert "--dataset-name" not in script_flags(reproduce)
    assert "no-such-target" not in make_targets() and {"run", "test", "setup"} <= make_targets()
    assert curl_request(["curl", "-s", "-X", "POST", "$API/v1/jobs/$JOB/cancel"]) == ("POST", "/v1/jobs/$JOB/cancel")
    assert curl_request(["curl", "-s", "-F", "file=@x.csv", "$API/v1/datasets?x=1"]) == ("POST", "/v1/datasets")
    assert curl_request(["curl", "https://example.com/v1/jobs"]) is None
    assert repo_paths(["docs/no-such.md", "digits/3/3.png", "$API/v1/jobs", "notes.md"], {"docs"}) == [
        "docs/no-such.md", "notes.md"]


def test_a_wrong_route_or_method_is_caught(routes):
    def takes(method, path):
        return any(method in ops for pattern, ops in routes if pattern.match(path))

    assert takes("POST", "/v1/jobs/x/cancel") and takes("GET", "/v1/jobs/x/plots/history.png")
    assert not takes("GET", "/v1/jobs/x/cancel") and not takes("GET", "/v1/job/x")
