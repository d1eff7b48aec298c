"""Property tests: generated proofs verify; any single-bit change to a proof, leaf or root is rejected."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import merkle


def _tree(n: int) -> tuple[list[bytes], list[list[bytes]]]:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    return leaves, merkle.build_levels(leaves)


def _flip(b: bytes, bit: int) -> bytes:
    i = bit % (len(b) * 8)
    return b[: i // 8] + bytes([b[i // 8] ^ (1 << (i % 8))]) + b[i // 8 + 1 :]


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300), st.data())
def test_inclusion_sound_and_tamper_evident(size: int, data: st.DataObject) -> None:
    leaves, levels = _tree(size)
    index = data.draw(st.integers(0, size - 1))
    root = merkle.root_of(leaves)
    proof = merkle.inclusion_proof(index, size, lambda lv, ix: levels[lv][ix])
    merkle.verify_inclusion(index, size, leaves[index], proof, root)
    bit = data.draw(st.integers(0, 255))
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(index, size, _flip(leaves[index], bit), proof, root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(index, size, leaves[index], proof, _flip(root, bit))
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(index, size, leaves[index], proof[:k] + [_flip(proof[k], bit)] + proof[k + 1 :],
                                    root)
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(index, size, leaves[index], proof[:-1], root)


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 300), st.data())
def test_consistency_sound_and_tamper_evident(size2: int, data: st.DataObject) -> None:
    leaves, levels = _tree(size2)
    size1 = data.draw(st.integers(1, size2 - 1))
    root1, root2 = merkle.root_of(leaves[:size1]), merkle.root_of(leaves)
    proof = merkle.consistency_proof(size1, size2, lambda lv, ix: levels[lv][ix])
    merkle.verify_consistency(size1, size2, root1, root2, proof)
    bit = data.draw(st.integers(0, 255))
    k = data.draw(st.integers(0, len(proof) - 1))
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(size1, size2, root1, root2, proof[:k] + [_flip(proof[k], bit)] + proof[k + 1 :])
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(size1, size2, _flip(root1, bit), root2, proof)
    # A forked history (one earlier leaf changed) is never consistent with the original.
    j = data.draw(st.integers(0, size1 - 1))
    forked = leaves[:j] + [_flip(leaves[j], bit)] + leaves[j + 1 :]
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(size1, size2, root1, merkle.root_of(forked), proof)
