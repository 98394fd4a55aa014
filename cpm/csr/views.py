"""CSR page views: thin — read through selectors, write through services, audit personal-data views."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone

from cpm.audit import audit_record
from enrollments.models import Customer

from . import selectors
from .masking import mask_email, mask_phone

CSR_PERMISSION = "cpm.use_csr_page"


def _can_see_pii(user) -> bool:
    return user.has_perm("cpm.view_personal_data")


@login_required
@permission_required(CSR_PERMISSION, raise_exception=True)
def search(request):
    query = request.GET.get("q", "")
    results = selectors.customer_search(query=query) if query else []
    return render(request, "csr/search.html", {"query": query, "results": results})


@login_required
@permission_required(CSR_PERMISSION, raise_exception=True)
def customer_detail(request, customer_id: int):
    now = timezone.now()
    try:
        page = selectors.customer_page(customer_id=customer_id, now=now)
    except Customer.DoesNotExist as exc:
        raise Http404("No such customer") from exc
    show_pii = _can_see_pii(request.user)
    contact = {
        "email": page.customer.email if show_pii else mask_email(page.customer.email),
        "phone": page.customer.phone if show_pii else mask_phone(page.customer.phone),
        "masked": not show_pii,
    }
    audit_record(obj=page.customer, action="view_personal_data", now=now, actor=request.user,
                 changes={"unmasked": show_pii, "page": "csr_customer"})
    return render(request, "csr/customer.html", {"page": page, "contact": contact, "now": now})
