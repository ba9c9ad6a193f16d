"""Rules for agency users: created and changed by the registry admin, passwords hashed with
argon2id, the sign-in check the gateway's console asks for (recorded in the audit trail), and
whether a signed-in user's tokens are still to be honoured."""

from __future__ import annotations

import functools
import secrets

from services.registry.agency.repository import AgencyRepository
from services.registry.agency.service import require_agency
from services.registry.client.schemas import ClientStatus
from services.registry.errors import UserCredentialsInvalidError, UserExistsError, UserNotFoundError
from services.registry.events import UserUpdated, record
from services.registry.models import Agency, AgencyUser, messaging
from services.registry.user.repository import UserRepository
from services.registry.user.schemas import SignedIn, UserCreate, UserRead, UserUpdate
from shared.audit import record_audit
from shared.auth import hash_secret, verify_secret_async
from shared.db import utcnow
from shared.errors import AgencyInactiveError
from shared.roles import Role, scopes_of

USER_PREFIX = "user:"
"""A user's tokens name it ``user:<username>`` (an API client id never has a colon)."""


@functools.cache
def _dummy_hash() -> str:
    """The hash checked for an unknown user, so that the answer takes as long as for a wrong password."""
    return hash_secret(secrets.token_urlsafe(16))


def user_client_id(username: str) -> str:
    """Return the token subject of a user."""
    return f"{USER_PREFIX}{username}"


class UserService:
    def __init__(self, users: UserRepository, agencies: AgencyRepository, *, actor: str | None = None) -> None:
        self.users = users
        self.agencies = agencies
        self.actor = actor  # the calling admin's client id, recorded in the audit trail

    async def _require(self, username: str) -> AgencyUser:
        """Return the user with this name or raise 404."""
        user = await self.users.by_username(username)
        if user is None:
            raise UserNotFoundError(f"No user is named {username!r}", username=username)
        return user

    async def _agency(self, user: AgencyUser) -> Agency:
        agency = await self.agencies.get(user.agency_id)
        assert agency is not None  # a foreign key
        return agency

    async def _read(self, user: AgencyUser, agency: Agency | None = None) -> UserRead:
        agency = agency or await self._agency(user)
        return UserRead(
            username=user.username,
            display_name=user.display_name,
            agency_code=agency.code,
            role=Role(user.role),
            status="disabled" if user.status == "disabled" else "active",
            created_at=user.created_at,
            updated_at=user.updated_at,
            last_sign_in_at=user.last_sign_in_at,
        )

    async def _audit(self, action: str, user: AgencyUser, agency_code: str, details: dict[str, object]) -> None:
        await record_audit(
            self.users,
            messaging,
            action,
            actor=self.actor,
            agency_code=agency_code,
            target=user.username,
            details=details,
        )

    async def create(self, data: UserCreate) -> UserRead:
        """Create a user bound to an agency, with a role and a password (hashed)."""
        agency = await require_agency(self.agencies, data.agency_code)
        if await self.users.by_username(data.username) is not None:
            raise UserExistsError(f"A user named {data.username!r} exists already", username=data.username)
        user = await self.users.add(
            AgencyUser(
                username=data.username,
                display_name=data.display_name,
                agency_id=agency.id,
                role=data.role.value,
                password_hash=hash_secret(data.password),
                status="active",
            )
        )
        await self._audit("user.created", user, agency.code, {"role": user.role})
        return await self._read(user, agency)

    async def list_users(self, agency_code: str | None = None) -> list[UserRead]:
        """List the users, of one agency or of all."""
        agency = await require_agency(self.agencies, agency_code) if agency_code else None
        users = await self.users.listed(agency_id=agency.id if agency else None)
        return [await self._read(u, agency) for u in users]

    async def get(self, username: str) -> UserRead:
        """Return a user."""
        return await self._read(await self._require(username))

    async def update(self, username: str, data: UserUpdate) -> UserRead:
        """Change a user's name, role, status or password."""
        user = await self._require(username)
        changed: list[str] = []
        if data.display_name is not None and data.display_name != user.display_name:
            user.display_name = data.display_name
            changed.append("display_name")
        if data.role is not None and data.role.value != user.role:
            user.role = data.role.value
            changed.append("role")
        if data.status is not None and data.status != user.status:
            user.status = data.status
            changed.append("status")
        if data.password is not None:
            user.password_hash = hash_secret(data.password)
            changed.append("password")
        if changed:
            user.updated_at = utcnow()
            await self.users.flush()
            agency = await self._agency(user)
            details: dict[str, object] = {"changed": changed, "role": user.role, "status": user.status}
            await self._audit("user.updated", user, agency.code, details)
            updated = UserUpdated(
                client_id=user_client_id(user.username),
                username=user.username,
                agency_code=agency.code,
                role=user.role,
                status=user.status,
                changed=changed,
            )
            await record(self.users, updated, ordering_key=f"user:{user.username}")
        return await self._read(user)

    async def sign_in(self, username: str, password: str) -> SignedIn:
        """Check a user name and password; the same error whatever is wrong. Recorded as
        ``user.signed_in`` in the check's transaction."""
        user = await self.users.by_username(username)
        ok = await verify_secret_async(user.password_hash if user else _dummy_hash(), password)
        if user is None or not ok or user.status != "active":
            raise UserCredentialsInvalidError("Wrong user name or password, or the account is disabled")
        agency = await self._agency(user)
        if agency.status != "active":
            raise AgencyInactiveError(
                f"Agency {agency.code} is {agency.status}: its users cannot sign in", agency_status=agency.status
            )
        user.last_sign_in_at = utcnow()
        await self.users.flush()
        await record_audit(
            self.users,
            messaging,
            "user.signed_in",
            actor=user_client_id(user.username),
            agency_code=agency.code,
            target=user.username,
            details={"role": user.role},
        )
        role = Role(user.role)
        return SignedIn(
            client_id=user_client_id(user.username),
            username=user.username,
            display_name=user.display_name,
            agency_code=agency.code,
            role=role,
            scopes=scopes_of(role),
        )

    async def record_refusal(self, username: str, reason: str) -> None:
        """Record a refused sign-in in the audit trail (answered, not raised, so that it commits)."""
        await record_audit(
            self.users,
            messaging,
            "user.sign_in_refused",
            actor=None,
            target=username,
            outcome="refused",
            details={"reason": reason},
        )

    async def status(self, client_id: str) -> ClientStatus:
        """Whether the tokens of ``user:<username>`` are still honoured (active user, active agency)."""
        user = await self.users.by_username(client_id.removeprefix(USER_PREFIX))
        if user is None:
            return ClientStatus(
                client_id=client_id, active=False, reason="unknown", agency_code=None, agency_status=None
            )
        agency = await self._agency(user)
        reason = None
        if user.status != "active":
            reason = "revoked"
        elif agency.status != "active":
            reason = f"agency_{agency.status}"
        return ClientStatus(
            client_id=client_id,
            active=reason is None,
            reason=reason,
            agency_code=agency.code,
            agency_status=agency.status,
            scopes=scopes_of(Role(user.role)),
        )
