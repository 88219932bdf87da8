"""SQLAlchemy 2 ORM on PyMySQL, used the way a mail-account web application uses it.

A declarative model of `Domain`, `Account` and `AccountForward` with relationships
(`Account.domain`, `Account.forwards`) is created with `metadata.create_all` in the database
`cairn_sqlalchemy` (dropped at start and end). Then:

- reflection reads it back: `inspect(engine).get_columns / get_pk_constraint / get_indexes /
  get_unique_constraints / get_foreign_keys` and `Table(..., autoload_with=engine)`, which on
  MySQL parse `SHOW CREATE TABLE` (shared/CLIENTS.md section 2.13);
- an account page's flow: load an account by localpart and domain name, append a forwarding
  address, commit, and read it back from a new session (joinedload and selectinload);
- delete-orphan, `any()` (EXISTS), an aggregate with a join, and Core UPDATEs whose rowcount
  counts matched rows because SQLAlchemy always sets CLIENT_FOUND_ROWS (section 2.8);
- the section 2.7 value set through a Core table with MySQL types, read back with Python types;
- commit and rollback as a second connection sees them, and the errors 1062, 1146, 1064, 1049
  and 1045 as SQLAlchemy's wrapped exceptions with the driver's code and SQLSTATE in `.orig`.
"""

import datetime
import decimal
import urllib.parse

import sqlalchemy
from sqlalchemy import (BigInteger, Column, Date, DateTime, ForeignKey, Integer, MetaData, String,
                        Table, Text, UniqueConstraint, create_engine, func, inspect, select, text,
                        update)
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import (DeclarativeBase, Mapped, Session, joinedload, mapped_column,
                            relationship, selectinload)

from common import (COLUMNS, ROW_MAX, ROW_MIN, Failure, check, check_pending, check_row, check_true, skip_pending,
                    main_wrapper, note, ok, settings)

DB = "cairn_sqlalchemy"


class Base(DeclarativeBase):
    pass


class Domain(Base):
    __tablename__ = "domain"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    accounts: Mapped[list["Account"]] = relationship(back_populates="domain", order_by="Account.id")


class Account(Base):
    __tablename__ = "account"
    __table_args__ = (UniqueConstraint("domain_id", "localpart", name="uq_account_domain_localpart"),
                      {"mysql_charset": "utf8mb4"})
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id"))
    localpart: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    quota_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created: Mapped[datetime.datetime] = mapped_column(DateTime)
    domain: Mapped[Domain] = relationship(back_populates="accounts")
    forwards: Mapped[list["AccountForward"]] = relationship(
        back_populates="account", cascade="all, delete-orphan", order_by="AccountForward.id")


class AccountForward(Base):
    __tablename__ = "account_forward"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    address: Mapped[str] = mapped_column(String(255))
    account: Mapped[Account] = relationship(back_populates="forwards")


types_table = Table(
    "types", Base.metadata,
    Column("id", mysql.INTEGER(unsigned=True), primary_key=True, autoincrement=True),
    Column("c_u64", mysql.BIGINT(unsigned=True)),
    Column("c_i64", BigInteger),
    Column("c_u32", mysql.INTEGER(unsigned=True)),
    Column("c_i8", mysql.TINYINT),
    Column("c_dec", mysql.DECIMAL(20, 4)),
    Column("c_txt", String(255)),
    Column("c_note", Text),
    Column("c_date", Date),
    Column("c_dt", DateTime),
    Column("c_blob", mysql.BLOB),
    mysql_charset="utf8mb4",
)


def url(database=None, user=None, password=None):
    cfg = settings()
    user = user or cfg["user"]
    password = cfg["password"] if password is None else password
    auth = urllib.parse.quote_plus(user) + (":" + urllib.parse.quote_plus(password) if password else "")
    return f"mysql+pymysql://{auth}@{cfg['host']}:{cfg['port']}/{database or ''}?charset=utf8mb4"


def expect_wrapped(what, action, wrapper, errno, sqlstate):
    try:
        action()
    except wrapper as exc:
        orig = exc.orig
        got = orig.args[0] if orig is not None and orig.args else None
        state = getattr(orig, "sqlstate", None)
        if got != errno:
            raise Failure(f"{what}: expected driver error {errno}, got {got} ({exc!r})") from exc
        if state is not None and state != sqlstate:
            raise Failure(f"{what}: expected SQLSTATE {sqlstate}, got {state}") from exc
        ok(what, f"{type(exc).__name__} wrapping {type(orig).__name__} {got}/{state}")
        return
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise Failure(f"{what}: expected {wrapper.__name__}, got {type(exc).__name__}: {exc}") from exc
    raise Failure(f"{what}: expected {wrapper.__name__} {errno}, but it succeeded")


def run():
    note(f"SQLAlchemy {sqlalchemy.__version__}")
    server = create_engine(url(), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        version = conn.execute(text("SELECT VERSION()")).scalar_one()
        note(f"server version {version}")
        conn.execute(text(f"DROP DATABASE IF EXISTS {DB}"))
        conn.execute(text(f"CREATE DATABASE {DB} DEFAULT CHARACTER SET utf8mb4"))
    ok(f"created database {DB}")

    engine = create_engine(url(DB), pool_pre_ping=True)
    Base.metadata.create_all(engine)
    insp = inspect(engine)
    check("create_all: tables", sorted(insp.get_table_names()), ["account", "account_forward", "domain", "types"])

    # ---- Reflection --------------------------------------------------------------------------
    columns = {c["name"]: c for c in insp.get_columns("account")}
    check("get_columns(account): names", list(columns),
          ["id", "domain_id", "localpart", "host", "state", "quota_bytes", "created"])
    check("account.id type", type(columns["id"]["type"]).__name__, "INTEGER")
    check("account.id autoincrement", columns["id"]["autoincrement"], True)
    check("account.id nullable", columns["id"]["nullable"], False)
    check("account.localpart type", str(columns["localpart"]["type"]).split(" ")[0], "VARCHAR(64)")
    check("account.localpart nullable", columns["localpart"]["nullable"], False)
    check("account.quota_bytes type", type(columns["quota_bytes"]["type"]).__name__, "BIGINT")
    check("account.created type", type(columns["created"]["type"]).__name__, "DATETIME")
    check("account.state server default", columns["state"]["default"], "'active'")
    check("get_pk_constraint(account)", insp.get_pk_constraint("account")["constrained_columns"], ["id"])
    indexes = {i["name"]: i for i in insp.get_indexes("account_forward")}
    check_true("get_indexes(account_forward) has ix_account_forward_account_id",
               "ix_account_forward_account_id" in indexes, f"indexes: {indexes}")
    check("ix_account_forward_account_id columns", indexes["ix_account_forward_account_id"]["column_names"],
          ["account_id"])
    uniques = {u["name"]: u["column_names"] for u in insp.get_unique_constraints("account")}
    check("get_unique_constraints(account)", uniques, {"uq_account_domain_localpart": ["domain_id", "localpart"]})
    fks = insp.get_foreign_keys("account")
    check("get_foreign_keys(account)", [(f["constrained_columns"], f["referred_table"], f["referred_columns"])
                                        for f in fks], [(["domain_id"], "domain", ["id"])])
    reflected = Table("account", MetaData(), autoload_with=engine)
    check("Table(autoload_with): columns", list(reflected.columns.keys()),
          ["id", "domain_id", "localpart", "host", "state", "quota_bytes", "created"])
    check("Table(autoload_with): primary key", [c.name for c in reflected.primary_key.columns], ["id"])
    check("Table(autoload_with): localpart length", reflected.c.localpart.type.length, 64)
    rtypes = Table("types", MetaData(), autoload_with=engine)
    check("Table(autoload_with): BIGINT UNSIGNED", bool(rtypes.c.c_u64.type.unsigned), True)
    check("Table(autoload_with): DECIMAL(20,4)", (rtypes.c.c_dec.type.precision, rtypes.c.c_dec.type.scale), (20, 4))

    # ---- Set-up data through the ORM ---------------------------------------------------------
    created = datetime.datetime(2024, 2, 29, 12, 0, 0)
    with Session(engine) as session:
        example = Domain(name="example.org")
        other = Domain(name="other.example")
        session.add_all([example, other])
        session.add_all([
            Account(domain=example, localpart="alice", host="mail1", quota_bytes=10 ** 10, created=created),
            Account(domain=example, localpart="bob", host="mail2", created=created),
            Account(domain=other, localpart="alice", host="mail3", state="disabled", created=created),
        ])
        session.commit()
        check("insert ids of domains", (example.id, other.id), (1, 2))
        check("insert ids of accounts", [a.id for a in example.accounts] + [a.id for a in other.accounts], [1, 2, 3])

    # ---- The account page: load by localpart and domain, add a forward, commit ----------------
    with Session(engine) as session:
        account = session.scalars(select(Account).join(Account.domain)
                                  .where(Account.localpart == "alice", Domain.name == "example.org")).one()
        check("loaded account host", account.host, "mail1")
        check("lazy-loaded Account.domain", account.domain.name, "example.org")
        check("no forwards yet", list(account.forwards), [])
        account.forwards.append(AccountForward(address="alice@elsewhere.example"))
        account.forwards.append(AccountForward(address="alice.backup@elsewhere.example"))
        session.commit()
    with Session(engine) as session:
        account = session.scalars(select(Account).options(joinedload(Account.domain), selectinload(Account.forwards))
                                  .join(Account.domain)
                                  .where(Account.localpart == "alice", Domain.name == "example.org")).one()
        check("forwards read back in a new session", [f.address for f in account.forwards],
              ["alice@elsewhere.example", "alice.backup@elsewhere.example"])
        check("joinedload domain", account.domain.name, "example.org")
        check("quota BIGINT round trip", account.quota_bytes, 10 ** 10)
        check("DATETIME round trip", account.created, created)
        check("server default state", account.state, "active")
        # Removing a forward from the collection deletes its row (delete-orphan).
        account.forwards.remove(account.forwards[1])
        session.commit()
    with Session(engine) as session:
        check("delete-orphan removed the forward", session.scalars(select(AccountForward.address)).all(),
              ["alice@elsewhere.example"])
        with_forwards = session.scalars(select(Account.localpart).where(
            Account.forwards.any(AccountForward.address.like("%elsewhere%")))).all()
        check("any() (EXISTS subquery)", with_forwards, ["alice"])
        per_domain = session.execute(select(Domain.name, func.count(Account.id)).join(Domain.accounts)
                                     .group_by(Domain.name).order_by(Domain.name)).all()
        check("count per domain (JOIN + GROUP BY)", [tuple(r) for r in per_domain],
              [("example.org", 2), ("other.example", 1)])
        # SQLAlchemy always sets CLIENT_FOUND_ROWS: a same-value UPDATE counts its matched row.
        result = session.execute(update(Account).where(Account.localpart == "bob").values(host="mail2"))
        check("Core UPDATE to the same value: rowcount (matched rows, FOUND_ROWS)", result.rowcount, 1)
        result = session.execute(update(Account).where(Account.domain_id == 1).values(host="mail9"))
        check("Core UPDATE of two rows: rowcount", result.rowcount, 2)
        session.commit()
        # An ORM UPDATE checks the matched-row count; a wrong count would raise StaleDataError.
        bob = session.scalars(select(Account).where(Account.localpart == "bob")).one()
        bob.state = "disabled"
        session.commit()
        check("ORM UPDATE committed", session.scalars(select(Account.state).where(Account.id == bob.id)).one(), "disabled")

    # ---- The value set through a Core table -------------------------------------------------
    with engine.begin() as conn:
        result = conn.execute(types_table.insert(), ROW_MAX)
        check("Core INSERT inserted_primary_key", tuple(result.inserted_primary_key), (1,))
        result = conn.execute(types_table.insert(), ROW_MIN)
        check("Core INSERT second inserted_primary_key", tuple(result.inserted_primary_key), (2,))
    with engine.connect() as conn:
        rows = conn.execute(select(types_table).order_by(types_table.c.id)).all()
        check_row("Core SELECT max row", tuple(rows[0]), ROW_MAX)
        check_row("Core SELECT min row", tuple(rows[1]), ROW_MIN)
        found = conn.execute(select(types_table.c.id).where(types_table.c.c_u64 == 18446744073709551615,
                                                            types_table.c.c_dec == decimal.Decimal("-12345.6789"))).all()
        check("WHERE on BIGINT UNSIGNED max and a negative DECIMAL", [tuple(r) for r in found], [(1,)])

    # ---- Transactions seen from a second connection ------------------------------------------
    with Session(engine) as session, engine.connect() as observer:
        def visible():
            # A new transaction per look, as a separate request would have.
            count = observer.execute(text("SELECT COUNT(*) FROM domain WHERE name = 'new.example'")).scalar_one()
            observer.rollback()
            return count

        session.add(Domain(name="new.example"))
        session.flush()
        check_pending("transactions", "flushed, uncommitted row invisible to a second connection", visible(), 0)
        session.rollback()
        check_pending("transactions", "rolled-back row invisible", visible(), 0)
        if visible() == 0:
            session.add(Domain(name="new.example"))
            session.commit()
        check("committed row visible to a second connection", visible(), 1)

    # ---- Errors -----------------------------------------------------------------------------
    with Session(engine) as session:
        if not skip_pending("unique", "duplicate key on flush"):
            session.add(Domain(name="example.org"))
            expect_wrapped("duplicate key on flush", session.flush, IntegrityError, 1062, "23000")
            session.rollback()
        expect_wrapped("unknown table", lambda: session.execute(text("SELECT * FROM no_such_table")),
                       ProgrammingError, 1146, "42S02")
        session.rollback()
        expect_wrapped("syntax error", lambda: session.execute(text("SELEC 1")), ProgrammingError, 1064, "42000")
        session.rollback()
        check("session usable after errors", session.scalars(select(func.count(Domain.id))).one(), 3)
    missing = create_engine(url("cairn_no_such_database"))
    expect_wrapped("unknown database", lambda: missing.connect().close(), OperationalError, 1049, "42000")
    missing.dispose()

    user_name = DB
    password = "Cairn-pw-7"
    with server.connect() as conn:
        try:
            conn.execute(text(f"DROP USER IF EXISTS '{user_name}'@'%'"))
            conn.execute(text(f"CREATE USER '{user_name}'@'%' IDENTIFIED BY '{password}'"))
            conn.execute(text(f"GRANT ALL PRIVILEGES ON {DB}.* TO '{user_name}'@'%'"))
            created_user = True
        except sqlalchemy.exc.DBAPIError as exc:
            note(f"server rejected CREATE USER ({exc.orig}); checking a wrong password for {settings()['user']} instead")
            created_user = False
    if created_user:
        good = create_engine(url(DB, user=user_name, password=password))
        with good.connect() as conn:
            check("login with the right password", conn.execute(text("SELECT CURRENT_USER()")).scalar_one(),
                  f"{user_name}@%")
        good.dispose()
        bad = create_engine(url(DB, user=user_name, password="wrong-pw"))
    else:
        bad = create_engine(url(DB, password=settings()["password"] + "-wrong"))
    expect_wrapped("wrong password", lambda: bad.connect().close(), OperationalError, 1045, "28000")
    bad.dispose()

    engine.dispose()
    with server.connect() as conn:
        if created_user:
            conn.execute(text(f"DROP USER '{user_name}'@'%'"))
        conn.execute(text(f"DROP DATABASE {DB}"))
    server.dispose()
    ok(f"dropped database {DB}")


if __name__ == "__main__":
    main_wrapper(run)
