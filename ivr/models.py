"""IVR tables: menus and their options, department business hours, the holiday calendar.

Menus are data an admin edits in the web UI; the FastAGI server reads them per call, so a
change is live for the next caller without a restart.
"""

from __future__ import annotations

from datetime import date, time

from sqlalchemy import Date, ForeignKey, String, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_core.models import Base, Department

OPTION_ACTIONS = ("department", "menu", "operator", "callback")
AFTER_HOURS = ("callback", "voicemail")
DAY_KINDS = ("holiday", "workday")  # a day off, or a weekend day worked instead (transfer)


class IvrMenu(Base):
    """One voice menu; the entry menu of a call is the one whose `did` matches, else `is_default`."""

    __tablename__ = "ivr_menus"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)  # "main", also the first step of ivr_path
    did: Mapped[str] = mapped_column(String(32), default="")  # dialled number served by this menu
    is_default: Mapped[bool] = mapped_column(default=False)
    greeting: Mapped[str] = mapped_column(String(128))  # Asterisk prompt name: callcard/ivr-main
    invalid_prompt: Mapped[str] = mapped_column(String(128), default="callcard/ivr-invalid")
    timeout_seconds: Mapped[int] = mapped_column(default=5)
    max_retries: Mapped[int] = mapped_column(default=2)  # repeats after a timeout or a wrong digit
    fallback_queue: Mapped[str] = mapped_column(String(64), default="sales")  # the operator queue

    options: Mapped[list[IvrOption]] = relationship(
        back_populates="menu", cascade="all, delete-orphan", foreign_keys="IvrOption.menu_id",
        order_by="IvrOption.digit",
    )


class IvrOption(Base):
    """What a digit does in a menu: a department, a sub-menu, the operator queue or a callback request."""

    __tablename__ = "ivr_options"
    __table_args__ = (UniqueConstraint("menu_id", "digit"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    menu_id: Mapped[int] = mapped_column(ForeignKey("ivr_menus.id", ondelete="CASCADE"), index=True)
    digit: Mapped[str] = mapped_column(String(1))
    action: Mapped[str] = mapped_column(String(16))  # one of OPTION_ACTIONS
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id", ondelete="CASCADE"))
    submenu_id: Mapped[int | None] = mapped_column(ForeignKey("ivr_menus.id", ondelete="CASCADE"))
    priority: Mapped[int] = mapped_column(default=0)  # IVR_PRIORITY, the queue priority of the caller

    menu: Mapped[IvrMenu] = relationship(back_populates="options", foreign_keys=[menu_id])
    department: Mapped[Department | None] = relationship()
    submenu: Mapped[IvrMenu | None] = relationship(foreign_keys=[submenu_id])


class DepartmentSchedule(Base):
    """How a department is reached out of hours, and the time zone its hours are written in."""

    __tablename__ = "ivr_department_schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE"), unique=True
    )
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Moscow")
    after_hours: Mapped[str] = mapped_column(String(16), default="callback")  # one of AFTER_HOURS
    voicemail_prompt: Mapped[str] = mapped_column(String(128), default="callcard/ivr-closed")

    department: Mapped[Department] = relationship()
    hours: Mapped[list[BusinessHours]] = relationship(
        back_populates="schedule", cascade="all, delete-orphan", order_by="BusinessHours.weekday"
    )


class BusinessHours(Base):
    """Opening hours on one weekday (0 = Monday); a weekday without a row is closed."""

    __tablename__ = "ivr_business_hours"
    __table_args__ = (UniqueConstraint("schedule_id", "weekday"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(
        ForeignKey("ivr_department_schedules.id", ondelete="CASCADE"), index=True
    )
    weekday: Mapped[int]
    opens: Mapped[time] = mapped_column(Time)
    closes: Mapped[time] = mapped_column(Time)

    schedule: Mapped[DepartmentSchedule] = relationship(back_populates="hours")


class Holiday(Base):
    """A calendar day that breaks the weekly pattern for every department."""

    __tablename__ = "ivr_holidays"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="holiday")  # one of DAY_KINDS
    name: Mapped[str] = mapped_column(String(128), default="")
