"""Tollgate's Lambda functions and their event sources. Declarations only.

Each function hands the raw Lambda event to its context's handler, which returns the SQS
partial-batch response (the schedule's handler: a summary of what it posted). The handler
modules are imported on first call, so packaging and the local runner can read these
declarations without the handlers' dependencies.
"""

from chalice import Chalice, Cron
from chalice.app import CloudWatchEvent, SQSEvent

from functions.shared.settings import settings

app = Chalice(app_name="tollgate")


@app.on_sqs_message(queue=settings().ingest_queue, batch_size=1)
def handle_cdr_drops(event: SQSEvent) -> dict:
    from functions.ingest.handler import handle_cdr_drops as handle

    return handle(event.to_dict(), event.context)


@app.on_sqs_message(queue=settings().rate_queue, batch_size=1)
def handle_normalized_files(event: SQSEvent) -> dict:
    from functions.rate.handler import handle_normalized_files as handle

    return handle(event.to_dict(), event.context)


# 02:00 UTC on the 1st: the month just ended in every tenant's zone east of UTC-2. A tenant
# further west still has hours of it: fees count days of service, not traffic, and the tiers'
# traffic of those hours is trued up when the month is closed again, a month later.
@app.schedule(Cron(0, 2, 1, "*", "?", "*"))
def close_billing_month(event: CloudWatchEvent) -> dict:
    from functions.invoice.handler import handle_month_end as handle

    return handle(event.to_dict(), event.context)
