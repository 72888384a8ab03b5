"""The streams: one declaration each, with its API reference, endpoint, primary key, cursor and record shape.

What reading them means is the base's (base_stream.py), what a record looks like beyond the flattened resource is
the `shape` (records.py), and which stream reads which parent list is the source's `CATALOG` (source.py). The
stream's name is its class name in snake case (`CourseEnrollments` -> `course_enrollments`), which also names its
schema (`schemas/course_enrollments.json`).
"""

from __future__ import annotations

from typing import Any, Mapping, MutableMapping, Optional

from .base_stream import NorthpassStream, NorthpassSubStream
from .cursor import CREATED_AT, UPDATED_AT, format_timestamp
from .records import DerivedId, RecordShape, WebhookPayload


class People(NorthpassStream):
    """People (learners and admins) of the account. https://developers.northpass.com/reference/list-people"""

    endpoint = "people"
    cursor_field = UPDATED_AT
    lists_for_children = True


class Courses(NorthpassStream):
    """Courses of the account. https://developers.northpass.com/reference/list-courses"""

    endpoint = "courses"
    cursor_field = UPDATED_AT
    lists_for_children = True


class Groups(NorthpassStream):
    """Groups of people. https://developers.northpass.com/reference/list-groups"""

    endpoint = "groups"
    cursor_field = UPDATED_AT
    lists_for_children = True


class LearningPaths(NorthpassStream):
    """Learning paths (ordered sets of courses). https://developers.northpass.com/reference/list-learning-paths"""

    endpoint = "learning-paths"
    cursor_field = UPDATED_AT
    lists_for_children = True


class Categories(NorthpassStream):
    """Course categories. https://developers.northpass.com/reference/list-categories"""

    endpoint = "categories"
    cursor_field = UPDATED_AT


class Quizzes(NorthpassStream):
    """Quizzes. No `updated_at`, so full refresh only. https://developers.northpass.com/reference/list-quizzes"""

    endpoint = "quizzes"


class CourseEnrollments(NorthpassSubStream):
    """Enrollments of each course. https://developers.northpass.com/reference/list-course-enrollments"""

    endpoint = "courses/{parent_id}/enrollments"
    parent_key = "course_id"
    shape = RecordShape(hoisted={"person": "person_id"})  # the attribute when sent, else the relationship


class CourseActivities(NorthpassSubStream):
    """Activities (lessons) of each course. https://developers.northpass.com/reference/list-course-activities"""

    endpoint = "courses/{parent_id}/activities"
    parent_key = "course_id"


class GroupMemberships(NorthpassSubStream):
    """Memberships of each group. https://developers.northpass.com/reference/list-group-memberships"""

    endpoint = "groups/{parent_id}/memberships"
    parent_key = "group_id"
    shape = RecordShape(hoisted={"person": "person_id"})  # the member is only named in `relationships`


class LearningPathEnrollments(NorthpassSubStream):
    """Enrollments of each learning path. https://developers.northpass.com/reference/list-learning-path-enrollments"""

    endpoint = "learning-paths/{parent_id}/enrollments"
    parent_key = "learning_path_id"
    shape = RecordShape(hoisted={"person": "person_id"})  # the attribute when sent, else the relationship


class Events(NorthpassStream):
    """Learning events (e.g. `learner_viewed_activity_events`): an append-only log, read newest first.

    `/v2/events` is not in Northpass's public reference (observed in a production client). Its resources
    have no id, so one is derived; course-level events point at a course instead of an activity.
    """

    endpoint = "events"
    cursor_field = CREATED_AT
    newest_first = True
    shape = RecordShape(
        hoisted={"person": "person_id", "activity": "activity_id", "course": "course_id"},
        derived_id=DerivedId(("type", "person_id", "activity_id", "course_id", CREATED_AT), instants=(CREATED_AT,)),
    )


class QuizAttempts(NorthpassStream):
    """Completed quiz attempts, unwrapped from the webhook log (`quiz_completed_events` messages).

    No endpoint lists quiz attempts; `/v2/webhooks` (observed, not documented) keeps about three months of
    the messages sent to the account's webhook subscriptions, one per subscribed URL. The cursor is the
    message's `created_at` (`webhook_created_at`), the attribute the API sorts and filters on: a message
    that becomes visible late still has a creation time at or after the previous sync's newest.
    """

    endpoint = "webhooks"
    lists_for_children = True
    max_page_size = 50  # the webhook log serves at most 50 messages a page
    cursor_field = "webhook_created_at"
    cursor_attribute = CREATED_AT
    newest_first = True
    first_page_params = {"filter[type][in]": "quiz_completed_events"}  # may let other types through: checked
    shape = RecordShape(
        hoisted={"quiz": "quiz_id", "course": "course_id", "person": "person_id", "activity": "activity_id"},
        payload=WebhookPayload(
            event_type="quiz_completed_events",
            id_attribute="quiz_attempt_uuid",
            message_columns={
                "id": "webhook_id",
                "type": "webhook_type",
                "created_at": "webhook_created_at",
                "received_at": "webhook_received_at",
                "url": "webhook_url",
                "attempt_left": "webhook_attempt_left",
            },
            type_column="webhook_type",
            empty_reason=(
                "the webhook log has no message. Quiz attempts are read from it, so the account needs a webhook "
                "subscription to quiz completions, and only the last 3 months or so are kept."
            ),
        ),
    )


class QuizAttemptAnswers(NorthpassSubStream):
    """Answers of each quiz attempt. Observed, not documented. An attempt without answers answers 404.

    Incremental on its attempt's `webhook_created_at`: answers do not change once an attempt is completed,
    so an incremental read visits only the attempts delivered since its cursor.
    """

    endpoint = "quiz_attempts/{parent_id}/answers"
    parent_key = "quiz_attempt_id"
    cursor_field = "webhook_created_at"
    shape = RecordShape(hoisted={"question": "question_id"})


class CourseProperties(NorthpassStream):
    """Each course's custom properties, one record per course (`id` = the course id), kept as one object column.

    `/v2/properties/courses` is not in the public reference (observed in a production client, which reads it until
    an empty page). Full refresh: nothing tells a changed property.
    """

    endpoint = "properties/courses"


class Transcripts(NorthpassSubStream):
    """Each person's transcript: one item per course or learning path they are enrolled in, with progress status,
    enrollment, start and completion times, score and certificate expiry.

    `/v2/transcripts/{person_id}` is not in the public reference (observed in a production client). Items have no
    `updated_at`: an incremental read re-reads the people with evidence of a change plus a rolling share of
    everyone (transcripts.py). `read_at`, the start of the sync that read the item, is the cursor: a later read
    of an item supersedes an earlier one.
    """

    endpoint = "transcripts/{parent_id}"
    parent_key = "person_id"
    cursor_field = "read_at"
    cursor_from_parent = False  # the cursor is the sync's start, not the person's

    def to_record(
        self, resource: Mapping[str, Any], stream_slice: Optional[Mapping[str, Any]]
    ) -> MutableMapping[str, Any]:
        record = super().to_record(resource, stream_slice)
        record[str(self.cursor_field)] = format_timestamp(self.clock.started()) if self.clock else None
        return record
