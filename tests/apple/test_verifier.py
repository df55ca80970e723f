"""The verified-chain cache: faster, never more trusting than Apple's own verifier."""

from __future__ import annotations

import time

import pytest
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.signed_data_verifier import VerificationException

from app.apple.library import CachingChainVerifier, make_verifier
from app.simulator.certs import generate_chain
from app.simulator.signing import JwsSigner

BUNDLE = "com.cache.test"


def _transaction(signed_at_ms: int, transaction_id: str = "2000000000000001") -> dict[str, object]:
    return {
        "transactionId": transaction_id,
        "originalTransactionId": transaction_id,
        "bundleId": BUNDLE,
        "productId": f"{BUNDLE}.monthly",
        "type": "Non-Consumable",
        "environment": "Sandbox",
        "signedDate": signed_at_ms,
        "purchaseDate": signed_at_ms,
        "quantity": 1,
    }


def test_cached_chain_still_checks_each_signature_and_date() -> None:
    chain = generate_chain()
    signer = JwsSigner(chain)
    verifier = make_verifier([chain.root_der], False, Environment.SANDBOX, BUNDLE, None)
    cache = verifier._chain_verifier
    assert isinstance(cache, CachingChainVerifier)
    now_ms = int(time.time() * 1000)
    first = signer.sign(_transaction(now_ms))
    assert verifier.verify_and_decode_signed_transaction(first).transactionId == "2000000000000001"
    assert len(cache._verified) == 1, "the chain was cached"
    second = signer.sign(_transaction(now_ms, "2000000000000002"))
    assert verifier.verify_and_decode_signed_transaction(second).transactionId == "2000000000000002"
    header, _, signature = second.split(".")
    tampered = ".".join([header, first.split(".")[1], signature])
    with pytest.raises(VerificationException):
        verifier.verify_and_decode_signed_transaction(tampered)
    before_validity = signer.sign(_transaction(1_300_000_000_000))  # 2011: before the chain
    with pytest.raises(VerificationException):
        verifier.verify_and_decode_signed_transaction(before_validity)


def test_a_foreign_chain_is_refused_even_after_a_cache_hit() -> None:
    trusted, foreign = generate_chain(), generate_chain("someone else")
    verifier = make_verifier([trusted.root_der], False, Environment.SANDBOX, BUNDLE, None)
    now_ms = int(time.time() * 1000)
    verifier.verify_and_decode_signed_transaction(JwsSigner(trusted).sign(_transaction(now_ms)))
    with pytest.raises(VerificationException):
        verifier.verify_and_decode_signed_transaction(JwsSigner(foreign).sign(_transaction(now_ms)))
