"""The admin: "Revoke tokens" on users (a confirmation page with the dry run and a
reason), the revocation audit (read-only) and the refresh families (read-only).

The action is added to the ``ModelAdmin`` registered for the user model (when this module
loads and again in ``SjtiConfig.ready()``, so list ``"sjti.django"`` after
``"django.contrib.admin"``), or add :func:`revoke_tokens` to your ``UserAdmin.actions``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from django import forms

from ..errors import SjtiError
from .models import RefreshFamily, RevocationAudit

__all__ = ["RefreshFamilyAdmin", "RevocationAuditAdmin", "RevokeForm", "revoke_tokens"]

_SHOWN = 50


class RevokeForm(forms.Form):
    reason = forms.CharField(
        max_length=200,
        help_text="Recorded in the audit trail (who, when, why).",
        widget=forms.TextInput(attrs={"size": 60}),
    )


@admin.action(description="Revoke tokens (every device signs in again)", permissions=["change"])
def revoke_tokens(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> HttpResponse | None:
    """First call: the confirmation page with the impact (a dry run) and a reason field.
    Confirmed: one revocation (one transaction: keys, refresh families, audit, event)."""
    from .keys import revoke

    ids = [str(pk) for pk in queryset.values_list("pk", flat=True)]
    form = RevokeForm(request.POST if "confirm" in request.POST else None)
    if "confirm" in request.POST and form.is_valid():
        actor = f"admin:{request.user.get_username()}"
        try:
            result = revoke(ids, actor=actor, reason=form.cleaned_data["reason"])
        except SjtiError:
            modeladmin.message_user(
                request, "Revocation failed: the key store is unavailable.", messages.ERROR
            )
            return None
        if result is None:
            modeladmin.message_user(request, "Revocation scheduled after this transaction.")
        else:
            modeladmin.message_user(
                request,
                f"Revoked the tokens of {result.count} user(s) (audit #{result.audit_id}).",
                messages.SUCCESS,
            )
        return None
    impact = _impact(ids)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Revoke tokens",
        "opts": modeladmin.model._meta,
        "queryset": queryset[:_SHOWN],
        "count": len(ids),
        "shown": min(len(ids), _SHOWN),
        "ids": ids,
        "impact": impact,
        "form": form,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "action": "revoke_tokens",
    }
    return TemplateResponse(request, "sjti_django/revoke_confirmation.html", context)


def _impact(ids: list[str]) -> dict[str, int]:
    """The dry run: users holding a key (whose tokens end), live device sessions ended."""
    from ._runtime import runtime

    rt = runtime()
    preview = rt.store.revoke_many(ids, dry_run=True)
    families = RefreshFamily.objects.filter(user_id__in=ids, revoked=False).count()
    return {
        "with_key": preview.count,
        "without_key": len(ids) - preview.count,
        "families": families,
    }


@admin.register(RevocationAudit)
class RevocationAuditAdmin(admin.ModelAdmin):
    list_display = ("id", "at", "actor", "kind", "count", "reason", "detail")
    list_filter = ("kind",)
    search_fields = ("actor", "reason")
    ordering = ("-id",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RefreshFamily)
class RefreshFamilyAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "created_at", "last_used_at", "ip", "revoked")
    list_filter = ("revoked",)
    readonly_fields = (
        "id", "user", "created_at", "last_used_at", "user_agent", "ip", "revoked", "revoked_at"
    )  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def attach() -> None:
    """Add the action to whatever ModelAdmin the user model is registered with."""
    user_admin = admin.site._registry.get(get_user_model())
    if user_admin is None:
        return
    actions = list(user_admin.actions or [])
    if revoke_tokens not in actions:
        user_admin.actions = [*actions, revoke_tokens]


attach()
