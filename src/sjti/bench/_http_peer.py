"""The HTTP bench's peer: fastapi-users as its docs set it up (JWT, SQLAlchemy adapter).

``/users/me`` decodes the bearer JWT (PyJWT, HS256) and loads the user through the
adapter's ``AsyncSession``: what most FastAPI apps deploy. It cannot revoke one user's
tokens (its JWT logout answers 204 and the token keeps working). It runs on the same
database as sjti's server in the same shape, with the same pool options
(:func:`sjti._engine.pool_options`) and the same trivial ``/healthz``.
Settings: ``SJTI_BENCH_PEER_DATABASE_URL`` (a sync URL: ``sqlite:///...`` or
``postgresql+psycopg://...``) and ``SJTI_BENCH_PEER_SECRET``.
"""

# No ``from __future__ import annotations``: FastAPI reads the dependencies of the nested
# functions below from their annotations, which must be objects, not names to resolve.

import os
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
from fastapi_users_db_sqlalchemy import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from .._engine import make_engine, pool_options

__all__ = ["app_from_env", "async_url", "create_tables"]


class _Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTableUUID, _Base):
    __tablename__ = "peer_user"


class UserRead(schemas.BaseUser[uuid.UUID]):
    pass


class UserCreate(schemas.BaseUserCreate):
    pass


def async_url(url: str) -> str:
    """The async driver's URL for a sync one (psycopg 3 serves both under one name)."""
    return url.replace("sqlite://", "sqlite+aiosqlite://", 1)


def create_tables(url: str) -> None:
    """Create the peer's table once, before its workers start."""
    engine = make_engine(url)
    try:
        _Base.metadata.create_all(engine)
    finally:
        engine.dispose()


def create_app(url: str, secret: str) -> FastAPI:
    engine = create_async_engine(async_url(url), **pool_options(url))
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def session() -> AsyncIterator[AsyncSession]:
        async with sessions() as opened:
            yield opened

    async def user_db(
        opened: Annotated[AsyncSession, Depends(session)],
    ) -> AsyncIterator[SQLAlchemyUserDatabase[User, uuid.UUID]]:
        yield SQLAlchemyUserDatabase(opened, User)

    class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
        reset_password_token_secret = secret
        verification_token_secret = secret

    async def user_manager(
        database: Annotated[SQLAlchemyUserDatabase[User, uuid.UUID], Depends(user_db)],
    ) -> AsyncIterator[UserManager]:
        yield UserManager(database)

    def strategy() -> JWTStrategy[User, uuid.UUID]:
        return JWTStrategy(secret=secret, lifetime_seconds=3600)

    backend = AuthenticationBackend(
        name="jwt", transport=BearerTransport(tokenUrl="auth/jwt/login"), get_strategy=strategy
    )
    users = FastAPIUsers[User, uuid.UUID](user_manager, [backend])
    app = FastAPI(title="fastapi-users peer")
    app.include_router(users.get_auth_router(backend), prefix="/auth/jwt")
    app.include_router(users.get_register_router(UserRead, UserCreate), prefix="/auth")
    app.include_router(users.get_users_router(UserRead, schemas.BaseUserUpdate), prefix="/users")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The framework's ceiling: the same trivial route as sjti's."""
        return {"status": "ok"}

    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory: settings from ``SJTI_BENCH_PEER_*``."""
    return create_app(
        os.environ["SJTI_BENCH_PEER_DATABASE_URL"], os.environ["SJTI_BENCH_PEER_SECRET"]
    )
