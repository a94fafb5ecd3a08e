"""The three go-auth questions, answered for certificate identities and token clients.

Who asks decides how the subject is found:

* **a token client** sends its JWT as the MQTT password (the bench's plugin passes it in
  the ``password`` field of every check) or as ``Authorization: Bearer`` (go-auth's JWT
  remote mode, the seed's curl examples). The token must validate; the MQTT username must
  be empty or the token's subject id, so nobody borrows another identity's name;
* **a certificate identity** (the mTLS listener, ``use_identity_as_username``) sends no
  token: the username is the certificate CN the TLS layer proved. Mosquitto never asks
  ``/mqtt/user`` for these, so ``/mqtt/user`` without a token is refused — a listener
  without client certificates can never log anyone in by name alone.
"""

from __future__ import annotations

from backend.errors import StartupError
from backend.policy.engine import Decision, PolicyEngine, SiteIdentities, rule_set
from backend.policy.errors import InvalidRule, TokenRejected
from backend.policy.rules import Subject
from backend.policy.tokens import TokenSettings, TokenVerifier
from backend.settings import Settings

_NO_ISSUER = (
    "token clients are not accepted here: the site has no token issuer configured "
    "(AURORA_AUTH_JWKS_URL)"
)


class PolicyService:
    """Subjects from tokens or certificate names, decisions from the engine."""

    def __init__(
        self,
        engine: PolicyEngine,
        identities: SiteIdentities,
        verifier: TokenVerifier | None,
    ) -> None:
        self.engine = engine
        self.identities = identities
        self.verifier = verifier

    async def _subject(self, username: str, token: str) -> Subject | Decision:
        """The subject asking, or the deny that explains why there is none."""
        if token:
            if self.verifier is None:
                return Decision(False, _NO_ISSUER)
            try:
                subject = await self.verifier.subject(token)
            except TokenRejected as error:
                return Decision(False, error.message)
            if username and username != subject.id:
                return Decision(
                    False,
                    f"username {username!r} is not the token's subject {subject.id!r}; "
                    "connect with that username or an empty one",
                )
            return subject
        identity = self.identities.subject(username)
        if identity is None:
            return Decision(
                False,
                f"username {username!r} is no certificate identity of this site and no "
                "token was given",
            )
        return identity

    async def authenticate(self, username: str, token: str) -> Decision:
        """``/mqtt/user``: a valid token whose subject the username names (or empty)."""
        if not token:
            return Decision(
                False,
                "no token: send a JWT as the MQTT password (certificate clients are "
                "authenticated by TLS and never asked here)",
            )
        found = await self._subject(username, token)
        if isinstance(found, Decision):
            return found
        return Decision(True, "", f"token of {found.describe()}")

    async def superuser(self, username: str, token: str) -> Decision:
        """``/mqtt/superuser``: the subject holds ``superuser`` through its roles."""
        found = await self._subject(username, token)
        if isinstance(found, Decision):
            return found
        return self.engine.superuser(found)

    async def check(
        self, username: str, clientid: str, topic: str, acc: int, token: str
    ) -> Decision:
        """``/mqtt/acl``: may the subject read (1), publish (2) or subscribe (4) topic?"""
        found = await self._subject(username, token)
        if isinstance(found, Decision):
            return found
        return self.engine.check(found, clientid, topic, acc)


def token_verifier(settings: Settings) -> TokenVerifier | None:
    """The site's token verifier, or None when no issuer is configured.

    Raises :class:`~backend.errors.StartupError` for an unsafe algorithm list.
    """
    if not settings.auth_jwks_url:
        return None
    try:
        token_settings = TokenSettings(
            jwks_url=settings.auth_jwks_url,
            audience=settings.auth_audience,
            issuer=settings.auth_issuer,
            algorithms=tuple(settings.auth_algorithms),
            leeway_s=settings.auth_leeway_s,
            jwks_refresh_min_s=settings.auth_jwks_refresh_min_s,
        )
    except ValueError as error:
        raise StartupError(f"AURORA_AUTH_ALGORITHMS: {error}") from None
    return TokenVerifier(token_settings)


def site_policy(settings: Settings) -> PolicyService:
    """The policy service of one site: its rules file, identities and token issuer.

    Raises :class:`~backend.errors.StartupError` naming the rules file problem.
    """
    try:
        rules = rule_set(settings.policy_rules)
    except InvalidRule as error:
        raise StartupError(f"policy rules (AURORA_POLICY_RULES): {error.message}") from None
    return PolicyService(
        PolicyEngine(rules), SiteIdentities(settings.site_id), token_verifier(settings)
    )
