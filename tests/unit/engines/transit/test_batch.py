"""CPU-heavy transit work leaves the event loop (DESIGN §7): `batch.run_items` and the
handlers that use it. Behaviour only (where the work ran, whether the loop kept running, the
results and their order); timing is measured in bench/rsa_batch_health.py."""

from __future__ import annotations

import asyncio
import base64
import threading

from tests.loop import Ticker
from tests.unit.engines.transit.tx import Env
from transit import pools
from transit.crypto.keytypes import KeyType
from transit.engines.transit import batch
from transit.engines.transit.batch import PRIVATE, PUBLIC, REWRAP, gil_free, item_cost, run_items


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_costs_rank_asymmetric_work_above_symmetric() -> None:
    assert item_cost(KeyType.RSA4096, PRIVATE) > item_cost(KeyType.RSA2048, PRIVATE)
    assert item_cost(KeyType.RSA4096, REWRAP) > item_cost(KeyType.RSA4096, PRIVATE)
    assert item_cost(KeyType.RSA4096, PUBLIC) < item_cost(KeyType.RSA4096, PRIVATE)
    # One RSA-4096 private operation is over the inline budget; one AES item is far under.
    assert item_cost(KeyType.RSA4096, PRIVATE) > batch.INLINE_BUDGET
    assert item_cost(KeyType.AES256_GCM96, PRIVATE) * 16 <= batch.INLINE_BUDGET
    assert gil_free(KeyType.RSA4096) and gil_free(KeyType.ECDSA_P256)
    assert gil_free(KeyType.ED25519)
    assert not gil_free(KeyType.AES256_GCM96) and not gil_free(KeyType.HMAC)


def test_small_work_runs_inline_without_yielding() -> None:
    async def go() -> None:
        main = threading.get_ident()
        seen: list[int] = []
        with Ticker() as t:
            await asyncio.sleep(0)
            before = t.ticks
            await run_items(lambda i: seen.append(threading.get_ident()), 10, 1e-5, True)
            assert t.ticks == before  # no await happened: the hot path pays nothing
        assert seen == [main] * 10
    asyncio.run(go())


def test_gil_free_work_runs_on_the_pool_in_order_and_the_loop_runs() -> None:
    async def go() -> None:
        main = threading.get_ident()
        order: list[int] = []
        threads: set[int] = set()

        def step(i: int) -> None:
            threads.add(threading.get_ident())
            order.append(i)

        with Ticker() as t:
            await run_items(step, 500, 1e-3, True)  # 0.5 s estimated: 25 chunks
            assert t.ticks > 0
        assert order == list(range(500))
        assert main not in threads
    asyncio.run(go())


def test_gil_bound_work_stays_on_the_loop_and_yields_between_chunks() -> None:
    async def go() -> None:
        main = threading.get_ident()
        threads: set[int] = set()
        with Ticker() as t:
            await asyncio.sleep(0)
            before = t.ticks
            await run_items(lambda i: threads.add(threading.get_ident()), 5000, 1e-5, False)
            assert t.ticks > before
        assert threads == {main}
    asyncio.run(go())


def test_step_exception_propagates_from_the_pool() -> None:
    async def go() -> None:
        def step(i: int) -> None:
            if i == 3:
                raise ValueError("boom")

        try:
            await run_items(step, 10, 1e-2, True)
        except ValueError as exc:
            assert str(exc) == "boom"
        else:
            raise AssertionError("expected the step's error")
    asyncio.run(go())


def test_rsa_batch_decrypt_off_the_loop_keeps_order_and_item_errors() -> None:
    async def go() -> None:
        e = await Env().setup()
        await e.write("keys/r", {"type": "rsa-2048"})
        n = 40  # 40 x 0.4 ms estimated: over the inline budget, so it runs on the pool
        items = [{"plaintext": b64(f"item {i}")} for i in range(n)]
        enc = await e.write("encrypt/r", {"batch_input": items})
        cts = [x["ciphertext"] for x in enc.data["batch_results"]]
        assert all(ct.startswith("vault:v1:") for ct in cts)
        batch_in = [{"ciphertext": ct, "reference": str(i)} for i, ct in enumerate(cts)]
        batch_in[7] = {"ciphertext": "vault:v1:AAAA", "reference": "7"}  # fails to decrypt
        batch_in[9] = {"ciphertext": "", "reference": "9"}  # fails its pre-pass
        with Ticker() as t:
            resp = await e.write("decrypt/r", {"batch_input": batch_in,
                                               "partial_failure_response_code": 207})
            assert t.ticks > 0
        results = resp.data["batch_results"]
        assert [x["reference"] for x in results] == [str(i) for i in range(n)]
        for i, x in enumerate(results):
            if i == 7:
                assert "decryption error" in x["error"]
            elif i == 9:
                assert x["error"] == "missing ciphertext to decrypt"
            else:
                assert x == {"plaintext": b64(f"item {i}"), "reference": str(i)}
        assert resp.status == 207  # the §5 rules still apply: the override, since items succeeded
    asyncio.run(go())


def test_single_rsa4096_decrypt_and_rewrap_and_upsert_run_off_the_loop() -> None:
    async def go() -> None:
        e = await Env().setup()
        main = threading.get_ident()
        created_on: list[int] = []
        from transit.engines.transit import encrypt as enc_mod

        orig = enc_mod._create_policy

        def spy(*args: object) -> object:
            created_on.append(threading.get_ident())
            return orig(*args)  # type: ignore[arg-type]

        enc_mod._create_policy = spy  # type: ignore[assignment]
        try:
            with Ticker() as t:
                r = await e.write("encrypt/big", {"plaintext": b64("hi"), "type": "rsa-4096"})
                assert t.ticks > 0
        finally:
            enc_mod._create_policy = orig  # type: ignore[assignment]
        assert created_on and main not in created_on
        ct = r.data["ciphertext"]
        assert (await e.write("decrypt/big", {"ciphertext": ct})).data == {"plaintext": b64("hi")}
        rw = await e.write("rewrap/big", {"ciphertext": ct})
        assert rw.data["ciphertext"].startswith("vault:v1:")
    asyncio.run(go())


def test_sign_verify_and_hmac_batches_in_chunks() -> None:
    async def go() -> None:
        e = await Env().setup()
        await e.write("keys/ec", {"type": "ecdsa-p256"})
        await e.write("keys/h", {"type": "aes256-gcm96"})
        n = 300
        items = [{"input": b64(f"m{i}"), "reference": str(i)} for i in range(n)]
        sig = await e.write("sign/ec", {"batch_input": items})
        sigs = [x["signature"] for x in sig.data["batch_results"]]
        assert [x["reference"] for x in sig.data["batch_results"]] == [str(i) for i in range(n)]
        ver_in = [{"input": b64(f"m{i}"), "signature": s, "reference": str(i)}
                  for i, s in enumerate(sigs)]
        ver_in[5]["input"] = b64("tampered")
        ver = await e.write("verify/ec", {"batch_input": ver_in})
        valid = [x["valid"] for x in ver.data["batch_results"]]
        assert valid == [i != 5 for i in range(n)]

        big = [{"input": b64(f"m{i}"), "reference": str(i)} for i in range(3000)]
        big[10] = {"input": "!!", "reference": "10"}
        with Ticker() as t:
            macs = await e.write("hmac/h", {"batch_input": big})
            assert t.ticks > 0  # 3,000 HMAC items yield to the loop between chunks
        out = macs.data["batch_results"]
        assert [x["reference"] for x in out] == [str(i) for i in range(3000)]
        assert "error" in out[10] and all(x["hmac"].startswith("vault:v1:")
                                          for i, x in enumerate(out) if i != 10)
        check = [{"input": b64(f"m{i}"), "hmac": x.get("hmac", ""), "reference": str(i)}
                 for i, x in enumerate(out)]
        check[10] = {"input": b64("m10"), "hmac": out[11]["hmac"], "reference": "10"}
        vr = await e.write("verify/h", {"batch_input": check})
        res = vr.data["batch_results"]
        assert res[10] == {"reference": "10"}  # a false `valid` is omitted, as in Vault
        assert all(x == {"valid": True, "reference": str(i)} for i, x in enumerate(res) if i != 10)
    asyncio.run(go())


def test_raw_rsa_signature_runs_in_a_process_off_the_loop() -> None:
    """hash_algorithm=none + pkcs1v15 is Python big-integer arithmetic (it holds the GIL):
    it runs on the pool thread, which hands the arithmetic to a worker process; the
    signature is the same as the one computed in-process and verifies."""
    async def go() -> None:
        from transit.crypto import rsa_cipher

        e = await Env().setup()
        await e.write("keys/r", {"type": "rsa-2048"})
        digest = base64.b64encode(bytes(range(32))).decode()
        body = {"input": digest, "hash_algorithm": "none", "prehashed": True,
                "signature_algorithm": "pkcs1v15"}
        with Ticker() as t:
            resp = await e.write("sign/r", body)
            assert t.ticks > 0
        assert pools._processes is not None  # the process pool was used
        sig = resp.data["signature"]
        ok = await e.write("verify/r", {**body, "signature": sig})
        assert ok.data == {"valid": True}
        # Deterministic: the same signature as the in-process computation.
        p = await e.b.policies.get("r")
        raw = rsa_cipher.sign_pkcs1v15_raw(p.keys[1].rsa_private(), bytes(range(32)))
        assert sig == "vault:v1:" + base64.b64encode(raw).decode()
    asyncio.run(go())
