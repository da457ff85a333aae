"""The free provider: for venues that do not charge. Nothing is paid, so nothing is verified or refunded."""

from __future__ import annotations

from djamms_edge.hub.payments.provider import Checkout, CheckoutOrder, InvalidWebhook, PaymentError, VerifiedPayment


class FreeProvider:
    name = "free"

    async def create_checkout(self, order: CheckoutOrder) -> Checkout:
        if order.amount_minor != 0:
            raise PaymentError("the free provider takes no money; configure a payment provider to charge")
        return Checkout("free-" + order.request_id, order.success_url)

    def webhook_payment(self, payload: bytes, signature: str | None) -> VerifiedPayment | None:
        raise InvalidWebhook("the free provider sends no webhooks")

    async def verify(self, ref: str) -> VerifiedPayment | None:
        return VerifiedPayment(ref, 0, "")  # a free request's id is just its idempotency key

    async def refund(self, payment_ref: str, amount_minor: int, idempotency_key: str) -> str:
        if amount_minor != 0:
            raise PaymentError("the free provider took no money to give back")
        return "free-" + idempotency_key

    async def close(self) -> None:
        return None
