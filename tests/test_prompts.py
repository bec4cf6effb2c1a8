"""Tests of benchmark.prompts: GenEval pin/cache/download, stratified sampling, prompt files, transforms.

Offline and deterministic: every socket connection fails (autouse guard), downloads use file:// URLs
or a patched urlopen, hypothesis runs derandomized without an example database. The GenEval tests read
the shared copy ../shared/data/geneval (never copied into the repo) and skip when it is absent.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import pickle
import re
import socket
import urllib.error
import urllib.request
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import benchmark.prompts as P
from benchmark.prompts import (GENEVAL_FILE, Prompt, PromptError, PromptSet, PromptTransform, apply_transform,
                               comma_padding, geneval_cache_dir, geneval_lock, identity, load_geneval,
                               load_prompts, load_text_prompts, parse_transform, stratified_allocation,
                               stratified_sample, transform_from_spec)

REPO = Path(__file__).resolve().parents[1]
GENEVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "geneval"
GENEVAL_TAGS = {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100,
                "color_attr": 100}

PROPS = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                 phases=[Phase.explicit, Phase.generate, Phase.shrink],
                 suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No network, no user cache, no user override: every test sees a clean environment."""
    def refuse(*a, **k):
        raise OSError("network access in tests is not allowed")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv(P.GENEVAL_ENV, raising=False)
    monkeypatch.setenv(P.CACHE_ENV, str(tmp_path / "default-cache"))


@pytest.fixture(scope="module")
def geneval_file() -> Path:
    f = GENEVAL_DIR / GENEVAL_FILE
    if not f.is_file():
        pytest.skip(f"shared GenEval copy not found at {GENEVAL_DIR}")
    return f


@pytest.fixture(scope="module")
def geneval(geneval_file) -> PromptSet:
    return load_geneval(geneval_file)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _set(counts: list[int], tags: bool = True) -> PromptSet:
    prompts, i = [], 0
    for t, c in enumerate(counts):
        for _ in range(c):
            prompts.append(Prompt(f"p-{i:04d}", f"prompt {i}", (f"tag{t}",) if tags else ()))
            i += 1
    return PromptSet("synthetic", tuple(prompts))


# ---------------------------------------------------------------------------------------------- lock

def test_lock_pins_full_commit_urls_and_hashes():
    lock = geneval_lock()
    assert lock["repository"] == "https://github.com/djghosh13/geneval"
    assert re.fullmatch(r"[0-9a-f]{40}", lock["commit"]) and lock["commit"].startswith("af4902f")
    assert lock["license"] == "MIT"
    for name in (GENEVAL_FILE, "generation_prompts.txt"):
        entry = lock["files"][name]
        assert entry["url"] == (f"https://raw.githubusercontent.com/djghosh13/geneval/{lock['commit']}/prompts/{name}")
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])


def test_lock_matches_the_shared_copy(geneval_file):
    lock = geneval_lock()
    for name, entry in lock["files"].items():
        data = (GENEVAL_DIR / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]
    assert lock["files"][GENEVAL_FILE]["tag_counts"] == dict(
        collections.Counter(r["tag"] for r in _records(geneval_file)))


def test_geneval_data_is_not_committed():
    """The GenEval files must never be copied into the repository (any name: compared by size and hash)."""
    lock = geneval_lock()
    pinned = {(e["bytes"], e["sha256"]) for e in lock["files"].values()}
    sizes = {b for b, _ in pinned}
    skip = {".git", ".venv", ".ci-venv", ".hypothesis", ".pytest_cache", "__pycache__", "reports", ".cache"}
    stack = [REPO]
    while stack:
        d = stack.pop()
        for child in d.iterdir():
            if child.is_dir() and not child.is_symlink():
                if child.name not in skip:
                    stack.append(child)
            elif child.is_file():
                assert child.name not in (GENEVAL_FILE, "generation_prompts.txt", "object_names.txt"), child
                if child.stat().st_size in sizes:
                    digest = hashlib.sha256(child.read_bytes()).hexdigest()
                    assert (child.stat().st_size, digest) not in pinned, child


# ------------------------------------------------------------------------------------- GenEval loading

def test_geneval_counts_tags_ids_and_meta(geneval, geneval_file):
    recs = _records(geneval_file)
    from_file = dict(collections.Counter(r["tag"] for r in recs))
    assert len(geneval) == len(recs) == 553
    assert geneval.tag_counts() == from_file == GENEVAL_TAGS
    assert list(geneval.by_tag()) == list(GENEVAL_TAGS)          # file order of first appearance
    assert geneval.ids == tuple(f"geneval-{i:04d}" for i in range(553))
    for p, r in zip(geneval, recs):
        assert (p.text, p.tags) == (r["prompt"], (r["tag"],))
        assert p.meta == {k: v for k, v in r.items() if k not in ("prompt", "tag")}
        assert p.meta["include"] == r["include"]
    assert sum("exclude" in p.meta for p in geneval) == sum("exclude" in r for r in recs) == 80
    assert geneval["geneval-0000"].text == "a photo of a bench"
    # generation_prompts.txt is the same prompts in the same order
    txt = [line for line in (GENEVAL_DIR / "generation_prompts.txt").read_text().splitlines() if line]
    assert [p.text for p in geneval] == txt
    assert geneval.source["verified"] and geneval.source["commit"] == geneval_lock()["commit"]


def test_geneval_set_hash_is_stable(geneval):
    """Golden value: the canonical content hash of the pinned GenEval set (ids, texts, tags)."""
    assert geneval.sha256 == "1f7328703a1358d31f1ae9bd2e31a3edc87f7ccdf4922020bcbc723b463f0f4f"


def test_geneval_path_forms(geneval, geneval_file, tmp_path):
    assert load_geneval(GENEVAL_DIR) == geneval                   # folder holding the file
    checkout = tmp_path / "geneval-checkout" / "prompts"
    checkout.mkdir(parents=True)
    (checkout / GENEVAL_FILE).write_bytes(geneval_file.read_bytes())
    assert load_geneval(checkout.parent) == geneval               # GenEval checkout
    with pytest.raises(PromptError, match="no such file or folder"):
        load_geneval(tmp_path / "missing")
    with pytest.raises(PromptError, match="folder without"):
        load_geneval(tmp_path)


def test_env_var_overrides_cache_and_download(geneval, monkeypatch, tmp_path):
    monkeypatch.setenv(P.GENEVAL_ENV, str(GENEVAL_DIR))
    ps = load_geneval(cache_dir=tmp_path / "empty", download=False)
    assert ps == geneval and not (tmp_path / "empty").exists()
    assert load_prompts("geneval", download=False) == geneval
    monkeypatch.setenv(P.GENEVAL_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(PromptError, match=r"\$SINKBENCH_GENEVAL: no such file"):
        load_geneval()
    assert load_geneval(GENEVAL_DIR) == geneval                   # an explicit path wins over the variable


def test_sha256_mismatch_names_expected_and_actual(geneval_file, tmp_path):
    bad = tmp_path / GENEVAL_FILE
    bad.write_bytes(geneval_file.read_bytes().replace(b"a photo of a bench", b"a photo of a bunch", 1))
    actual = hashlib.sha256(bad.read_bytes()).hexdigest()
    expected = geneval_lock()["files"][GENEVAL_FILE]["sha256"]
    with pytest.raises(PromptError) as exc:
        load_geneval(bad)
    msg = str(exc.value)
    assert f"expected {expected}" in msg and f"actual {actual}" in msg and "verify=False" in msg
    ps = load_geneval(bad, verify=False)
    assert ps[0].text == "a photo of a bunch" and ps.source["verified"] is False and ps.source["sha256"] == actual
    # the dispatcher routes a file with GenEval's name to the verified loader
    with pytest.raises(PromptError, match="not the pinned GenEval"):
        load_prompts(str(bad))


def test_generation_prompts_txt_is_recognised(geneval_file):
    with pytest.raises(PromptError, match="generation_prompts.txt .*give the evaluation_metadata.jsonl"):
        load_geneval(GENEVAL_DIR / "generation_prompts.txt")


def test_malformed_geneval_records(tmp_path):
    f = tmp_path / GENEVAL_FILE
    f.write_text('{"tag": "colors", "prompt": "a red cat"}\n{"prompt": "no tag"}\n')
    with pytest.raises(PromptError, match=r":2: a GenEval record needs"):
        load_geneval(f, verify=False)
    f.write_text('{"tag": "colors", "prompt": "a red cat"}\nnot json\n')
    with pytest.raises(PromptError, match=r":2: not JSON"):
        load_geneval(f, verify=False)


# --------------------------------------------------------------------------------- cache and download

def test_default_cache_dir(monkeypatch, tmp_path):
    commit = geneval_lock()["commit"]
    monkeypatch.setenv(P.CACHE_ENV, str(tmp_path / "c"))
    assert geneval_cache_dir() == tmp_path / "c" / "geneval" / commit
    monkeypatch.delenv(P.CACHE_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert geneval_cache_dir() == tmp_path / "home" / ".cache" / "sinkbench" / "geneval" / commit
    assert geneval_cache_dir(tmp_path / "r") == tmp_path / "r" / "geneval" / commit


def test_download_to_cache_then_offline(geneval, geneval_file, tmp_path):
    src = tmp_path / "mirror" / GENEVAL_FILE
    src.parent.mkdir()
    src.write_bytes(geneval_file.read_bytes())
    cache = tmp_path / "cache"
    ps = load_geneval(cache_dir=cache, url=src.as_uri())
    assert ps == geneval and ps.source["downloaded_from"] == src.as_uri()
    assert sorted(x.name for x in cache.iterdir()) == [GENEVAL_FILE]        # no .part left behind
    assert (cache / GENEVAL_FILE).read_bytes() == geneval_file.read_bytes()
    src.unlink()
    assert load_geneval(cache_dir=cache, download=False) == geneval         # served from the cache
    assert load_geneval(cache_dir=cache, url="file:///nonexistent") == geneval


def test_default_url_is_the_pinned_one(geneval_file, monkeypatch, tmp_path):
    seen = {}

    def fake_urlopen(url, timeout=None):
        seen.update(url=url, timeout=timeout)
        return io.BytesIO(geneval_file.read_bytes())
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    ps = load_geneval()                                                     # default cache: $SINKBENCH_CACHE
    assert seen["url"] == geneval_lock()["files"][GENEVAL_FILE]["url"] and seen["timeout"] > 0
    assert Path(ps.source["file"]) == geneval_cache_dir() / GENEVAL_FILE
    assert len(load_prompts("geneval:16", download=False)) == 16            # now cached


def test_corrupted_download_leaves_nothing(geneval_file, tmp_path):
    src = tmp_path / "corrupt.jsonl"
    src.write_bytes(geneval_file.read_bytes()[:-100])
    cache = tmp_path / "cache"
    with pytest.raises(PromptError) as exc:
        load_geneval(cache_dir=cache, url=src.as_uri())
    assert "sha256" in str(exc.value) and "nothing was written" in str(exc.value)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_network_failure_explains_what_to_do(monkeypatch, tmp_path):
    def offline(url, timeout=None):
        raise urllib.error.URLError("Name or service not known")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    cache = tmp_path / "cache"
    with pytest.raises(PromptError) as exc:
        load_geneval(cache_dir=cache)
    msg = str(exc.value)
    lock = geneval_lock()
    assert lock["files"][GENEVAL_FILE]["url"] in msg
    assert str(cache / GENEVAL_FILE) in msg and lock["files"][GENEVAL_FILE]["sha256"] in msg
    assert "--prompts" in msg and "SINKBENCH_GENEVAL" in msg
    assert not cache.exists()
    # the socket guard also turns a real attempt into the same explanation
    with pytest.raises(PromptError, match="could not download"):
        load_geneval(cache_dir=cache, url="http://127.0.0.1:9/x")


def test_no_download_when_disabled(tmp_path):
    with pytest.raises(PromptError, match="not cached .* downloading is off") as exc:
        load_geneval(cache_dir=tmp_path, download=False)
    assert "--prompts" in str(exc.value)


def test_corrupted_cache_is_replaced_or_reported(geneval, geneval_file, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / GENEVAL_FILE).write_text("garbage\n")
    with pytest.raises(PromptError, match="cached .* has sha256"):
        load_geneval(cache_dir=cache, download=False)
    src = tmp_path / "good.jsonl"
    src.write_bytes(geneval_file.read_bytes())
    assert load_geneval(cache_dir=cache, url=src.as_uri()) == geneval
    assert (cache / GENEVAL_FILE).read_bytes() == geneval_file.read_bytes()


# ------------------------------------------------------------------------------- Prompt / PromptSet

def test_prompt_and_set_basics():
    a = Prompt("x-1", "a cat", ["animal"], {"k": [1]})
    assert a.tags == ("animal",) and hash(a) == hash(Prompt("x-1", "a cat", ("animal",)))
    with pytest.raises(AttributeError):
        a.text = "b"                                                        # frozen
    for bad_id in ("", "a b", "a/b", "-x", 3):
        with pytest.raises(PromptError, match="bad prompt id"):
            Prompt(bad_id, "t")
    with pytest.raises(PromptError, match="tags"):
        Prompt("x", "t", ("",))
    ps = PromptSet("s", (a, Prompt("x-2", "a dog", ("animal", "pet")), Prompt("x-3", "a cube")))
    assert len(ps) == 3 and [p.id for p in ps] == ["x-1", "x-2", "x-3"] and ps["x-2"].text == "a dog"
    assert {t: [p.id for p in v] for t, v in ps.by_tag().items()} == {
        "animal": ["x-1", "x-2"], "pet": ["x-2"], "": ["x-3"]}
    assert ps.pairs() == [("x-1", "a cat"), ("x-2", "a dog"), ("x-3", "a cube")]
    assert pickle.loads(pickle.dumps(ps)) == ps
    with pytest.raises(PromptError, match="duplicate prompt ids: x-1"):
        PromptSet("s", (a, a))
    with pytest.raises(PromptError, match="empty"):
        PromptSet("s", ())


def test_set_sha256_is_canonical_json_of_id_text_tags():
    ps = PromptSet("s", (Prompt("a", "café, ", ("t",), {"m": 1}), Prompt("b", "x")))
    canonical = '[["a","café, ",["t"]],["b","x",[]]]'
    assert ps.sha256 == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    same = PromptSet("other-name", (Prompt("a", "café, ", ("t",)), Prompt("b", "x")), {"file": "elsewhere"})
    assert same.sha256 == ps.sha256                                         # not name, meta or source
    assert PromptSet("s", tuple(reversed(ps.prompts))).sha256 != ps.sha256  # order matters


# ------------------------------------------------------------------------------- stratified sampling

counts_st = st.lists(st.integers(1, 40), min_size=1, max_size=8)


@PROPS
@given(counts=counts_st, data=st.data(), seed=st.integers(0, 2**32))
def test_stratified_sample_properties(counts, data, seed):
    ps = _set(counts)
    N, k = len(ps), len(counts)
    n = data.draw(st.integers(1, N), label="n")
    s = stratified_sample(ps, n, seed=seed)
    assert len(s) == n                                                      # sizes sum to n
    idx = [ps.ids.index(i) for i in s.ids]
    assert idx == sorted(idx) and len(set(idx)) == n                        # subset, original order
    assert all(p is ps.prompts[i] for p, i in zip(s, idx))
    got = {t: len(v) for t, v in s.by_tag().items()}
    quotas = {f"tag{t}": Fraction(n * c, N) for t, c in enumerate(counts)}
    binding = n >= k and any(q < 1 for q in quotas.values())
    for t, q in quotas.items():
        c = got.get(t, 0)
        assert c < q + 1                                                    # never more than ceil(q)
        if not binding:
            assert abs(c - q) < 1                                           # within 1 of proportional
    if n >= k:
        assert len(got) == k and min(got.values()) >= 1                     # every tag represented
    assert stratified_sample(ps, n, seed=seed).ids == s.ids                 # deterministic per seed
    assert s.source["sample"] == {"method": "stratified", "n": n, "seed": seed, "strata": {
        t: got.get(t, 0) for t in quotas}, "parent": "synthetic", "parent_sha256": ps.sha256, "parent_count": N}


@PROPS
@given(counts=counts_st, data=st.data())
def test_allocation_is_largest_remainder_when_no_minimum_binds(counts, data):
    N = sum(counts)
    n = data.draw(st.integers(1, N), label="n")
    alloc = stratified_allocation({f"t{i}": c for i, c in enumerate(counts)}, n)
    quotas = [Fraction(n * c, N) for c in counts]
    if n < len(counts) or min(quotas) >= 1:
        floors = [q.numerator // q.denominator for q in quotas]
        got = [alloc[f"t{i}"] for i in range(len(counts))]
        assert all(g - f in (0, 1) for g, f in zip(got, floors))
        # the extra seats go to the largest remainders
        extra = [quotas[i] - floors[i] for i in range(len(counts)) if got[i] > floors[i]]
        rest = [quotas[i] - floors[i] for i in range(len(counts)) if got[i] == floors[i]]
        assert not extra or not rest or min(extra) >= max(rest)


def test_stratified_geneval_every_n_within_one(geneval):
    counts = geneval.tag_counts()
    for n in range(1, len(geneval) + 1):
        alloc = stratified_allocation(counts, n)
        assert sum(alloc.values()) == n
        assert all(abs(alloc[t] - Fraction(n * c, 553)) < 1 for t, c in counts.items()), n
        if n >= 6:
            assert min(alloc.values()) >= 1


def test_stratified_geneval_64_and_first_n_bias(geneval):
    first = PromptSet("first64", geneval.prompts[:64])
    assert first.tag_counts() == {"single_object": 64}                     # why "first N" is biased
    s = stratified_sample(geneval, 64)
    assert s.name == "geneval:64"
    assert s.tag_counts() == {"single_object": 9, "two_object": 11, "counting": 9, "colors": 11,
                              "position": 12, "color_attr": 12}
    assert s.sha256 == "b8cb8520e77570ecf7b80ec713eeac585711165573bafe9d95e600e9905023ec"   # golden
    assert stratified_sample(geneval, 64, seed=1).ids != s.ids
    assert stratified_sample(geneval, 64, seed=1).name == "geneval:64@seed1"
    assert stratified_sample(geneval, 553).ids == geneval.ids              # n == len: all
    with pytest.raises(PromptError, match="cannot sample 554"):
        stratified_sample(geneval, 554)


def test_stratified_errors_and_untagged():
    ps = _set([10], tags=False)
    s = stratified_sample(ps, 4, seed=3)
    assert len(s) == 4 and s.tag_counts() == {"": 4}
    for bad in (0, -1, 1.5, True):
        with pytest.raises(PromptError):
            stratified_sample(ps, bad)
    with pytest.raises(PromptError):
        stratified_allocation({"a": 0}, 1)


# ------------------------------------------------------------------------------------ prompt files

def test_text_file(tmp_path):
    f = tmp_path / "my prompts.txt"
    f.write_text("# header comment\n\na red cube\n   a blue sphere  \n#another\n  # indented comment\nthird\n")
    ps = load_text_prompts(f)
    assert ps.name == "my_prompts"
    assert [(p.id, p.text, p.tags) for p in ps] == [
        ("my_prompts-0000", "a red cube", ()), ("my_prompts-0001", "a blue sphere", ()),
        ("my_prompts-0002", "third", ())]
    assert ps.source["loader"] == "text" and ps.source["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert load_prompts(str(f)) == ps


def test_jsonl_file(tmp_path):
    f = tmp_path / "set.jsonl"
    f.write_text('{"prompt": "a cat", "tag": "animal", "source": "x"}\n\n'
                 '{"id": "custom-7", "prompt": "a dog"}\n{"prompt": "a cube", "tags": ["shape", "blue"]}\n')
    ps = load_text_prompts(f)
    assert [(p.id, p.text, p.tags) for p in ps] == [
        ("set-0000", "a cat", ("animal",)), ("custom-7", "a dog", ()), ("set-0002", "a cube", ("shape", "blue"))]
    assert ps[0].meta == {"source": "x"} and ps.source["loader"] == "jsonl"


@pytest.mark.parametrize("content, match", [
    ("", "no prompts"),
    ("# only a comment\n\n   \n", "no prompts"),
])
def test_empty_text_files(tmp_path, content, match):
    f = tmp_path / "e.txt"
    f.write_text(content)
    with pytest.raises(PromptError, match=match):
        load_text_prompts(f)
    with pytest.raises(PromptError, match=match):
        load_prompts(f)


@pytest.mark.parametrize("content, match", [
    ("", "no prompts"),
    ('{"prompt": "a"}\nnot json\n', r"e\.jsonl:2: not JSON"),
    ('{"text": "a"}\n', r":1: needs a non-empty string 'prompt'"),
    ('["a"]\n', "JSON object"),
    ('{"prompt": "a", "tag": 3}\n', "'tag' must be"),
    ('{"prompt": "a", "tag": "x", "tags": ["y"]}\n', "not both"),
    ('{"id": "a b", "prompt": "a"}\n', "bad prompt id"),
    ('{"id": "k", "prompt": "a"}\n{"id": "k", "prompt": "b"}\n', "duplicate prompt ids: k"),
])
def test_jsonl_errors(tmp_path, content, match):
    f = tmp_path / "e.jsonl"
    f.write_text(content)
    with pytest.raises(PromptError, match=match):
        load_text_prompts(f)


def test_missing_file():
    with pytest.raises(PromptError, match="no such prompt file"):
        load_text_prompts("/nonexistent/prompts.txt")


def test_load_prompts_dispatch(tmp_path, monkeypatch, geneval):
    monkeypatch.setenv(P.GENEVAL_ENV, str(GENEVAL_DIR / GENEVAL_FILE))
    assert load_prompts("geneval") == geneval
    s = load_prompts("geneval:32")
    assert s == stratified_sample(geneval, 32) and s.name == "geneval:32"
    assert load_prompts("geneval:32", seed=5) == stratified_sample(geneval, 32, seed=5)
    assert load_prompts(str(GENEVAL_DIR)) == geneval                       # a folder holding the file
    f = tmp_path / "p.txt"
    f.write_text("\n".join(f"prompt {i}" for i in range(10)))
    assert load_prompts(f"{f}:3").ids == stratified_sample(load_text_prompts(f), 3).ids
    for spec in ("genevel", "geneval:", "geneval:0", "geneval:x", str(tmp_path / "nope.txt"), ""):
        with pytest.raises(PromptError) as exc:
            load_prompts(spec)
        msg = str(exc.value)
        assert "unknown prompt spec" in msg and "'geneval:N'" in msg and ".jsonl" in msg
    with pytest.raises(PromptError, match="folder without"):
        load_prompts(str(tmp_path))


# ---------------------------------------------------------------------------------------- transforms

def test_comma_padding_exact_string():
    t = comma_padding(3)
    assert t.apply("a photo of a cat") == "a photo of a cat, , , "         # ", " x 3, trailing space kept
    text = "a photo of a cat"
    padded = comma_padding().apply(text)                                   # the paper's 200
    assert padded == text + ", " * 200
    assert len(padded) == len(text) + 400 and padded.endswith(", ") and padded.count(",") == 200
    assert comma_padding(0).apply(text) == text
    assert comma_padding(3, style="pe2sink_demo").apply("a red cube") == "a red cube ,,,"
    assert comma_padding(3, style="pe2sink_demo").apply("a red cube ") == "a red cube ,,,"
    assert identity().apply(" x ") == " x "
    for bad in (-1, 1.0, True, "200"):
        with pytest.raises(PromptError, match="n must be"):
            comma_padding(bad)
    with pytest.raises(PromptError, match="style"):
        comma_padding(3, style="commas")


@PROPS
@given(n=st.integers(0, 1000), style=st.sampled_from(P.COMMA_STYLES))
def test_transform_spec_round_trip(n, style):
    t = comma_padding(n, style=style)
    spec = t.spec()
    assert spec == {"name": "comma_padding", "params": {"n": n, "style": style}}
    assert transform_from_spec(json.loads(json.dumps(spec))) == t
    assert parse_transform(json.dumps(spec)) == t
    assert parse_transform(f"comma_padding:n={n},style={style}") == t
    assert hash(transform_from_spec(spec)) == hash(t)


def test_transform_specs_and_errors():
    assert identity().spec() == {"name": "identity", "params": {}}
    assert transform_from_spec({"name": "identity"}) == identity()
    assert transform_from_spec({"name": "comma_padding"}) == comma_padding(200)   # defaults filled in
    assert PromptTransform("comma_padding", (("n", 200),)) == comma_padding()
    assert parse_transform("comma_padding:200") == parse_transform("comma_padding") == comma_padding()
    assert str(comma_padding()) == "comma_padding(n=200,style=comma_space)"
    for bad, match in [({"name": "shout"}, "unknown prompt transform"),
                       ({"name": "comma_padding", "params": {"m": 1}}, "unknown parameter"),
                       ({"name": "comma_padding", "params": {"n": -2}}, "n must be"),
                       ({"name": "identity", "extra": 1}, "unknown key"),
                       ({"params": {}}, "transform spec is")]:
        with pytest.raises(PromptError, match=match):
            transform_from_spec(bad)


def test_apply_transform_keeps_ids_and_records_transform():
    ps = PromptSet("s", (Prompt("a", "a cat", ("animal",), {"k": 1}), Prompt("b", "a dog")))
    t = comma_padding(2)
    out = apply_transform(ps, t)
    assert out.ids == ps.ids and [p.tags for p in out] == [p.tags for p in ps]
    assert [p.text for p in out] == ["a cat, , ", "a dog, , "]
    assert out[0].meta == {"k": 1, "transforms": [t.spec()], "original_text": "a cat"}
    assert out.source["transforms"] == [t.spec()] and out.sha256 != ps.sha256
    assert out.name == "s+comma_padding(n=2,style=comma_space)"
    assert ps[0].meta == {"k": 1}                                          # the input is untouched
    twice = apply_transform(out, identity())
    assert twice[0].meta["transforms"] == [t.spec(), identity().spec()]
    assert twice[0].meta["original_text"] == "a cat" and twice.sha256 == out.sha256


# ----------------------------------------------------------------------------------------------- CLI

def _cli(argv):
    parser = argparse.ArgumentParser()
    P.add_cli_arguments(parser)
    out, err = io.StringIO(), io.StringIO()
    rc = P.cli_prompts(parser.parse_args(argv), out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def test_cli_helpers(tmp_path, monkeypatch, geneval):
    monkeypatch.setenv(P.GENEVAL_ENV, str(GENEVAL_DIR))
    rc, out, _ = _cli(["geneval:12", "--json", "--transform", "comma_padding:5"])
    doc = json.loads(out)
    assert rc == 0 and doc["count"] == 12 and len(doc["prompts"]) == 12
    assert doc["prompts"][0]["text"].endswith(", " * 5) and doc["source"]["sample"]["n"] == 12
    rc, out, _ = _cli(["geneval:6"])
    assert rc == 0 and "geneval-" in out and "sha256" in out and "single_object 1" in out
    monkeypatch.delenv(P.GENEVAL_ENV)
    rc, _, err = _cli(["geneval", "--offline", "--cache-dir", str(tmp_path)])
    assert rc == 2 and "downloading is off" in err
    rc, _, err = _cli(["nonsense-spec"])
    assert rc == 2 and "Accepted forms" in err
