"""The order of messages: a worker's state reaches stdout behind the records it accounts for.

Airbyte commits a state message as "everything before it was delivered". The CDK's concurrent read puts records
on a queue that its main thread drains, but takes other messages from a repository it drains between any two queue
items, so a state could overtake its records: a crash between the two would leave a checkpoint claiming records
never delivered, which a retried attempt would then skip. `OrderedMessageRepository` closes that gap for every
cursor and checkpoint of the connector (cursor.py, checkpoint.py, transcripts.py).
"""

from __future__ import annotations

import threading
from queue import Queue
from typing import Callable, Iterable

from airbyte_cdk.models import AirbyteMessage, Level
from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.sources.message.repository import LogMessage
from airbyte_cdk.sources.streams.concurrent.partitions.types import QueueItem


class OrderedMessageRepository(MessageRepository):
    """Emits a worker's messages through the read's record queue, so they reach stdout after its records.

    The CDK's in-memory repository is drained by the main thread between any two queue items, so a
    state emitted by a worker right after its last record can overtake records still waiting in the
    queue: a crash in between would leave a checkpoint claiming records that were never delivered.
    A message put on the queue behind the records cannot. The main thread's own messages (the state at
    a stream's end) go to the source's repository, which it drains at once: putting on the queue it
    alone consumes could block it forever.
    """

    def __init__(self, queue: Queue[QueueItem], main_repository: MessageRepository) -> None:
        self._queue = queue
        self._main_repository = main_repository
        self.consumer_thread = threading.get_ident()  # reset by the source when its read starts

    def emit_message(self, message: AirbyteMessage) -> None:
        if threading.get_ident() == self.consumer_thread:
            self._main_repository.emit_message(message)
        else:
            self._queue.put(message)

    def log_message(self, level: Level, message_provider: Callable[[], LogMessage]) -> None:
        self._main_repository.log_message(level, message_provider)

    def consume_queue(self) -> Iterable[AirbyteMessage]:
        return self._main_repository.consume_queue()
