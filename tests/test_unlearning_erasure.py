"""Erasure hygiene: a request names its users, and no file of the workdir holds their ids afterwards."""

from __future__ import annotations

import json

import pytest
from unlearning_toys import toy_movielens, unlearn_parser, write_ml100k

from recaudit.results import AuditResults
from recaudit.unlearning.erasure import erasure_digest


def user(u: int) -> str:
    return f"usr7Q{u:03d}"  # distinctive ids, so a byte scan cannot hit them by chance


def toy(n_users: int = 12, per_user: int = 8):
    return toy_movielens(n_users=n_users, per_user=per_user, user_id=user)


parser = unlearn_parser


def common(tmp_path, tiny_lm_path, work):
    return ["--data", str(tmp_path / "ml"), "--model", str(tiny_lm_path), "--users", "9", "--never-seen-users", "3",
            "--history-len", "3", "--max-per-user", "3", "--batch-size", "4", "--max-length", "256", "--shards", "2",
            "--embedding", "hashing", "--e2urec-epochs", "1", "--e2urec-aug-epochs", "1", "--receraser-agg-samples", "8",
            "--workdir", str(work), "--out", str(work / "result.json"), "--torch-threads", "1"]  # fmt: skip


def forms(uid: str) -> list[bytes]:
    """Every way a user id could be written: raw UTF-8, UTF-16 (LE/BE), JSON-escaped, hex of its UTF-8."""
    return [uid.encode(), uid.encode("utf-16-le"), uid.encode("utf-16-be"), json.dumps(uid).encode(), uid.encode().hex().encode()]


def test_no_forgotten_user_id_in_any_workdir_file_after_unlearning(tiny_lm_path, tmp_path, capsys):
    catalog, inter = toy()
    write_ml100k(tmp_path / "ml", catalog, inter)
    work = tmp_path / "work"
    forgotten = [user(2), user(5)]
    args = parser().parse_args(["unlearn", "all", "--forget", ",".join(forgotten), "--request-id", "REQ-1",
                                *common(tmp_path, tiny_lm_path, work)])  # fmt: skip
    assert args.func(args) == 0
    files = [p for p in work.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"result.json", "retrain.safetensors", "manifest.json", "partial_results.json"}
    for p in files:
        blob = p.read_bytes()
        for uid in forgotten:
            for form in forms(uid):
                assert form not in blob, f"{uid!r} found in {p.relative_to(work)}"
    # the scan can fail: a retained user's id is in the data the run read, and would be found the same way
    kept = user(1).encode()
    assert kept in (tmp_path / "ml" / "u.data").read_bytes()
    for name in ("original", "e2urec", "badt", "neggrad", "ga"):
        assert not (work / f"{name}.safetensors").exists()
    result = AuditResults.from_json((work / "result.json").read_text()).checks[0]
    erasure = result.params["erasure"]
    assert erasure["request_id"] == "REQ-1" and erasure["forgotten_users"] == 2
    salt = capsys.readouterr().err.split("(salt ")[1].split(":")[0]
    assert erasure["forgotten_ids_salted_sha256"] == erasure_digest(forgotten, salt)  # the requester can verify it
    assert erasure_digest(forgotten, "other salt") != erasure["forgotten_ids_salted_sha256"]
    assert json.loads((work / "partial_results.json").read_text())["erasure_salt"] is None  # dropped once done
    assert salt.encode() not in b"".join(p.read_bytes() for p in files)


def test_forget_file_and_flags(tiny_lm_path, tmp_path):
    from recaudit.cli.unlearn import forget_request

    p = parser()
    ids = tmp_path / "ids.txt"
    ids.write_text("# erasure request 7\n13\n\n42  # second\n")
    base = ["unlearn", "apa", "--data", "x"]
    assert forget_request(p.parse_args(base + ["--forget-file", str(ids)])) == ["13", "42"]
    assert forget_request(p.parse_args(base + ["--forget", "13, 42"])) == ["13", "42"]
    assert forget_request(p.parse_args(base + ["--forget-users", "3"])) == 3
    assert forget_request(p.parse_args(base)) == 4  # the experiment default stays
    with pytest.raises(ValueError, match="one of"):
        forget_request(p.parse_args(base + ["--forget", "1", "--forget-users", "2"]))
    (tmp_path / "empty.txt").write_text("# nobody\n")
    with pytest.raises(ValueError, match="names no user"):
        forget_request(p.parse_args(base + ["--forget-file", str(tmp_path / "empty.txt")]))
    bad = p.parse_args(base + ["--forget-file", str(tmp_path / "missing.txt")])
    assert bad.func(bad) == 2  # one clear line, exit 2


def test_keep_artifacts_keeps_the_original(tiny_lm_path, tmp_path):
    catalog, inter = toy()
    write_ml100k(tmp_path / "ml", catalog, inter)
    work = tmp_path / "keep"
    args = parser().parse_args(["unlearn", "ga", "--forget", user(3), "--keep-artifacts", "--no-original",
                                *common(tmp_path, tiny_lm_path, work)])  # fmt: skip
    assert args.func(args) == 0
    assert (work / "original.safetensors").is_file() and (work / "ga.safetensors").is_file()
    result = json.loads((work / "result.json").read_text())
    assert result["checks"][0]["params"]["erasure"]["deleted_artifacts"] == []
