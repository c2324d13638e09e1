"""Tollgate's Lambda functions and their event sources. Declarations only.

Each function hands the raw Lambda event to its context's handler, which returns the SQS
partial-batch response. The handler modules are imported on first call, so packaging and the
local runner can read these declarations without the handlers' dependencies.
"""

from chalice import Chalice
from chalice.app import SQSEvent

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
