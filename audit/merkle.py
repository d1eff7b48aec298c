"""RFC 9162 §2.1 Merkle tree hashing, inclusion and consistency proofs (in the style of transparency-dev/merkle).

Trees are described by *perfect nodes*: (level, index) covers leaves [index·2^level, (index+1)·2^level).
Any tree of size n is the fold of the perfect nodes in n's binary decomposition, so storing perfect nodes
(or a compact range) is enough to produce roots and proofs in O(log n) look-ups.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256

NodeGetter = Callable[[int, int], bytes]  # (level, index) -> hash of a perfect node


class ProofError(ValueError):
    """A proof does not verify, or its parameters are inconsistent."""


class RootMismatchError(ProofError):
    """The proof is well-formed but leads to a different root."""


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def leaf_hashes(datas: Sequence[bytes]) -> list[bytes]:
    """Batch leaf hashing (one C-level loop, no per-entry objects besides the digests)."""
    return [_sha256(b"\x00" + d).digest() for d in datas]


def next_level(level: Sequence[bytes]) -> list[bytes]:
    """Parents of consecutive pairs (a trailing odd node has no parent at this level)."""
    return [_sha256(b"\x01" + a + b).digest() for a, b in zip(level[0::2], level[1::2], strict=False)]


def build_levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """All perfect nodes above `leaves`: levels[L][i] covers leaves [i·2^L, (i+1)·2^L)."""
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        levels.append(next_level(levels[-1]))
    return levels


def decompose(size: int) -> list[tuple[int, int]]:
    """Perfect nodes (level, index) whose concatenation is leaves [0, size), left to right."""
    out: list[tuple[int, int]] = []
    offset = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, offset >> level))
            offset += 1 << level
    return out


def fold(nodes: Sequence[bytes]) -> bytes:
    """Root of a tree given the hashes of its decomposition, left to right."""
    if not nodes:
        return EMPTY_ROOT
    root = nodes[-1]
    for h in reversed(nodes[:-1]):
        root = node_hash(h, root)
    return root


def root_from_getter(size: int, get: NodeGetter) -> bytes:
    return fold([get(level, index) for level, index in decompose(size)])


def root_of(leaves: Sequence[bytes]) -> bytes:
    """Root of the tree with these leaf hashes."""
    levels = build_levels(leaves) if leaves else [[]]
    return fold([levels[lv][ix] for lv, ix in decompose(len(leaves))])


def _largest_pow2_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def subtree_hash(start: int, end: int, get: NodeGetter) -> bytes:
    """MTH(D[start:end]) for a range that starts on a boundary of its largest power of two (as RFC splits do)."""
    n = end - start
    if n & (n - 1) == 0 and start % n == 0:
        return get(n.bit_length() - 1, start // n)
    k = _largest_pow2_below(n)
    return node_hash(subtree_hash(start, start + k, get), subtree_hash(start + k, end, get))


def inclusion_proof(index: int, size: int, get: NodeGetter) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size])."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} outside tree of size {size}")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _largest_pow2_below(end - start)
        if index < start + k:
            proof.append(subtree_hash(start + k, end, get))
            end = start + k
        else:
            proof.append(subtree_hash(start, start + k, get))
            start = start + k
    proof.reverse()
    return proof


def consistency_proof(size1: int, size2: int, get: NodeGetter) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(size1, D[0:size2])."""
    if not 0 <= size1 <= size2:
        raise ProofError(f"bad sizes {size1} > {size2}")
    if size1 == 0 or size1 == size2:
        return []
    proof: list[bytes] = []
    start, end, m, complete = 0, size2, size1, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                proof.append(subtree_hash(start, end, get))
            break
        k = _largest_pow2_below(n)
        if m <= k:
            proof.append(subtree_hash(start + k, end, get))
            end = start + k
        else:
            proof.append(subtree_hash(start, start + k, get))
            start, m, complete = start + k, m - k, False
    proof.reverse()
    return proof


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} is {len(value)} bytes, not {HASH_SIZE}")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root implied by an inclusion proof."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} outside tree of size {size}")
    _check_hash("leaf hash", leaf)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        _check_hash("proof element", p)
        if sn == 0:
            raise ProofError("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof too short")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ProofError unless `leaf` sits at `index` of the tree of `size` with `root`."""
    _check_hash("root", root)
    if not hmac.compare_digest(root_from_inclusion(index, size, leaf, proof), root):
        raise RootMismatchError("inclusion proof leads to a different root")


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2: raise ProofError unless the tree (size2, root2) extends (size1, root1)."""
    if size2 < size1:
        raise ProofError(f"size2 {size2} < size1 {size1}")
    if size1 == 0:
        # Everything extends the empty tree: such a "proof" proves nothing and is refused as meaningless.
        raise ProofError("consistency from an empty tree is meaningless")
    if size1 == size2:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        # Nothing is hashed here: the roots only have to be the same value (transparency-dev semantics).
        if not hmac.compare_digest(root1, root2):
            raise RootMismatchError("equal sizes but different roots")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    for p in proof:
        _check_hash("proof element", p)
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: its root is the first node on the path
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof too short")
    if not hmac.compare_digest(fr, root1):
        raise RootMismatchError("consistency proof does not lead to root1")
    if not hmac.compare_digest(sr, root2):
        raise RootMismatchError("consistency proof does not lead to root2")


class CompactRange:
    """The right edge (frontier) of a growing tree: the perfect nodes of size's decomposition.

    `append` returns the perfect nodes it completed, so a store can persist them for O(log n) proofs.
    """

    __slots__ = ("size", "nodes")

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        if len(nodes) != bin(size).count("1"):
            raise ProofError(f"compact range of size {size} needs {bin(size).count('1')} hashes, got {len(nodes)}")
        self.size = size
        self.nodes = list(nodes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf; return the new perfect nodes (level, index, hash), leaf included."""
        idx = self.size
        made = [(0, idx, leaf)]
        h = leaf
        level = 0
        self.nodes.append(leaf)
        while idx >> level & 1:
            right = self.nodes.pop()
            left = self.nodes.pop()
            h = node_hash(left, right)
            level += 1
            self.nodes.append(h)
            made.append((level, idx >> level, h))
        self.size += 1
        return made

    def root(self) -> bytes:
        return fold(self.nodes)


# --- subtree proofs (transparency-dev/merkle `VerifySubtreeInclusion` / `VerifySubtreeConsistency`) ----------
# A subtree [start, end) is valid when start is a multiple of the smallest power of two >= end - start
# (the shape used by Merkle Tree Certificates); such a subtree is an RFC 9162 tree of its own.


def check_subtree(start: int, end: int) -> None:
    if not 0 <= start < end:
        raise ProofError(f"empty or inverted subtree [{start}, {end})")
    width = end - start
    if start % (1 << (width - 1).bit_length()):
        raise ProofError(f"subtree [{start}, {end}) is not aligned")


def verify_subtree_inclusion(
    index: int, start: int, end: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    check_subtree(start, end)
    if not start <= index < end:
        raise ProofError(f"index {index} outside subtree [{start}, {end})")
    verify_inclusion(index - start, end - start, leaf, proof, root)


def _trailing_zeros(n: int) -> int:
    return (n & -n).bit_length() - 1


def root_from_subtree_consistency(start: int, end: int, size: int, proof: Sequence[bytes], sub_root: bytes) -> bytes:
    """The root of the tree of `size` implied by subtree [start, end) with hash `sub_root` and `proof`."""
    check_subtree(start, end)
    if size < end:
        raise ProofError(f"size {size} < end {end}")
    if start == 0 and end == size:
        if proof:
            raise ProofError("subtree is the whole tree: proof must be empty")
        return sub_root
    _check_hash("subtree root", sub_root)
    for p in proof:
        _check_hash("proof element", p)
    if not proof:
        raise ProofError("empty proof")
    height = ((end - 1) ^ start).bit_length()  # height of the subtree's own root node
    if end == size:
        # The subtree lies on the right border: only left siblings lead up to the root.
        if len(proof) != bin(start >> height).count("1"):
            raise ProofError("wrong proof size")
        r = sub_root
        for h in proof:
            r = node_hash(h, r)
        return r
    fork = ((end - 1) ^ (size - 1)).bit_length()  # where the paths to end-1 and size-1 part
    shift = _trailing_zeros(end - start)  # level of the rightmost perfect node inside the subtree
    if end - start == 1 << shift:
        seed, rest = sub_root, list(proof)
    else:
        seed, rest = proof[0], list(proof[1:])
    if len(rest) != (fork - shift) + bin((end - 1) >> fork).count("1"):
        raise ProofError("wrong proof size")
    sub = grown = seed
    i = 0
    for lvl in range(shift, height):
        if (end - 1) >> lvl & 1:
            sub = node_hash(rest[i], sub)
            grown = node_hash(rest[i], grown)
            i += 1
        elif lvl < fork:
            grown = node_hash(grown, rest[i])
            i += 1
    if not hmac.compare_digest(sub, sub_root):
        raise RootMismatchError("proof does not lead to the subtree root")
    return root_from_inclusion(start >> height, ((size - 1) >> height) + 1, grown, rest[i:])


def verify_subtree_consistency(
    start: int, end: int, size: int, proof: Sequence[bytes], sub_root: bytes, root: bytes
) -> None:
    if start == end:
        # The empty subtree is part of every tree: valid iff it is presented as such, with nothing to prove.
        if not 0 <= start <= size or proof or not hmac.compare_digest(sub_root, EMPTY_ROOT):
            raise ProofError("empty subtree needs the empty root and an empty proof")
        return
    if not hmac.compare_digest(root_from_subtree_consistency(start, end, size, proof, sub_root), root):
        raise RootMismatchError("subtree consistency proof leads to a different root")
