"""In-process cost of issued-token mode: minting, verifying (cached and not), encryption, refresh.

``python bench/inproc_issued.py [--number 2000] [--repeat 5]``

Per operation, CPU time (``time.process_time``), best of ``--repeat`` runs, in µs. The figure
that matters for a tool call is "verify, cached": what ``IssuedTokenVerifier.verify`` costs for
a token it has seen (a SHA-256 and an LRU lookup). "verify, uncached" is one signature check
plus claims, paid once per token per process.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import jwt as pyjwt  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa  # noqa: E402

from mcp_oauth_shim import rfc9068  # noqa: E402
from mcp_oauth_shim.encryption import UPSTREAM_REFRESH_TOKEN, TokenCipher  # noqa: E402
from mcp_oauth_shim.issued_refresh import IssuedRefresh, open_refresh_token, seal_refresh_token  # noqa: E402
from mcp_oauth_shim.sealing import Sealer  # noqa: E402
from mcp_oauth_shim.signing_keys import SigningKeys  # noqa: E402

ISSUER = "http://127.0.0.1:8000"
RESOURCE = "http://127.0.0.1:8000/mcp"
SECRETS = ["bench-secret-of-at-least-32-bytes-xxxxxxxxxx"]


def per_op(fn: Callable[[], object], number: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(number):
            fn()
        best = min(best, time.process_time() - start)
    return best / number * 1e6


def pem(private: object) -> str:
    return private.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n, r = args.number, args.repeat
    cipher = TokenCipher(SECRETS)
    key_sets = {
        "ES256 (derived)": SigningKeys.from_secrets(SECRETS),
        "RS256 (2048)": SigningKeys.from_keys([pem(rsa.generate_private_key(65537, 2048))]),
        "EdDSA (Ed25519)": SigningKeys.from_keys([pem(ed25519.Ed25519PrivateKey.generate())]),
    }
    rows: list[tuple[str, float]] = []
    for name, keys in key_sets.items():

        def mint(keys: SigningKeys = keys, **extra: object) -> str:
            return rfc9068.mint(
                keys, issuer=ISSUER, audience=RESOURCE, subject="12345", client_id="client", scopes=["read"], lifetime=3600, **extra
            )

        token = mint()
        public = keys.public_keys
        rows.append((f"{name}: mint", per_op(mint, n, r)))
        rows.append((f"{name}: verify, uncached", per_op(lambda t=token, p=public: rfc9068.verify(t, p, issuer=ISSUER, audience=RESOURCE), n, r)))
        pyjwt_key = pyjwt.PyJWK(keys.jwks["keys"][0]).key
        alg = keys.current.alg
        rows.append(
            (
                f"{name}: PyJWT decode (reference)",
                per_op(lambda t=token, k=pyjwt_key, a=alg: pyjwt.decode(t, k, algorithms=[a], audience=RESOURCE, issuer=ISSUER), n, r),
            )
        )
    keys = key_sets["ES256 (derived)"]
    # The floor: the bare ECDSA P-256 check through cryptography, without any JWT work.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    signer = keys.current.key.private_key
    message = b"x" * 300
    signature = signer.sign(message, ec.ECDSA(hashes.SHA256()))
    raw_public = signer.public_key()
    rows.append(("ES256: bare ECDSA verify (floor)", per_op(lambda: raw_public.verify(signature, message, ec.ECDSA(hashes.SHA256())), n, r)))
    with_upt = rfc9068.mint(
        keys, issuer=ISSUER, audience=RESOURCE, subject="1", client_id="c", scopes=["read"], lifetime=3600,
        upstream_access_token="gho_" + "x" * 36, cipher=cipher,
    )
    rows.append(
        (
            "ES256: mint with encrypted upstream token",
            per_op(
                lambda: rfc9068.mint(
                    keys, issuer=ISSUER, audience=RESOURCE, subject="1", client_id="c", scopes=["read"], lifetime=3600,
                    upstream_access_token="gho_" + "x" * 36, cipher=cipher,
                ),
                n,
                r,
            ),
        )
    )
    verifier = rfc9068.IssuedTokenVerifier(keys, issuer=ISSUER, audience=RESOURCE)
    verifier.verify(with_upt)
    rows.append(("verify, cached (IssuedTokenVerifier)", per_op(lambda: verifier.verify(with_upt), n * 50, r)))
    claims = verifier.verify(with_upt)
    rows.append(("upstream access token: decrypt", per_op(lambda: claims.upstream_access_token(cipher), n * 10, r)))
    ciphertext = cipher.encrypt("ghr_" + "x" * 76, purpose=UPSTREAM_REFRESH_TOKEN, context=("c", RESOURCE))
    rows.append(("AES-256-GCM encrypt (80 B)", per_op(lambda: cipher.encrypt("ghr_" + "x" * 76, purpose=UPSTREAM_REFRESH_TOKEN, context=("c", RESOURCE)), n * 10, r)))
    rows.append(("AES-256-GCM decrypt (80 B)", per_op(lambda: cipher.decrypt(ciphertext, purpose=UPSTREAM_REFRESH_TOKEN, context=("c", RESOURCE)), n * 10, r)))
    sealer = Sealer(SECRETS)
    grant = IssuedRefresh(client="fp", resource=RESOURCE, subject="1", scope="read", upstream_refresh_token="ghr_" + "x" * 76)
    refresh = seal_refresh_token(sealer, cipher, grant)
    rows.append(("refresh token: seal", per_op(lambda: seal_refresh_token(sealer, cipher, grant), n * 10, r)))
    rows.append(("refresh token: open", per_op(lambda: open_refresh_token(sealer, cipher, refresh, client="fp", resource=RESOURCE, max_age=3600), n * 10, r)))
    rows.append(("SigningKeys.from_secrets (startup, 1 secret)", per_op(lambda: SigningKeys.from_secrets(SECRETS), max(n // 10, 10), r)))
    width = max(len(name) for name, _ in rows)
    for name, micros in rows:
        print(f"{name:<{width}}  {micros:9.1f} µs")


if __name__ == "__main__":
    main()
