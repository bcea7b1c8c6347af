"""Every patient input's command, exactly, and the command queue's hand-off on and off the runtime loop."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from environments.scene_state import InputKind, PatientInput
from therapy import commands as cmd


def of(kind: InputKind, value: float | None = None, source: str = "openvr") -> cmd.Command | None:
    return cmd.command_for_input(PatientInput(1.0, kind, value, source))


def test_each_patient_input_maps_to_exactly_its_command():
    assert of(InputKind.STOP) == cmd.GoToSafePlace(source="patient (openvr)", reason="the patient asked to stop")
    assert of(InputKind.MENU, 2.0) == cmd.GoToSafePlace(source="patient (openvr)", reason="the patient asked to stop")
    assert of(InputKind.PAUSE, 1.0, "desktop") == cmd.GoToSafePlace(source="patient (desktop)",
                                                                     reason="paused from the display")
    assert of(InputKind.PAUSE, None) == cmd.GoToSafePlace(source="patient (openvr)", reason="paused from the display")
    assert of(InputKind.PAUSE, 0.0) is None  # un-pausing is the therapist's call
    assert of(InputKind.QUIT) == cmd.Interrupt(source="patient (openvr)", reason="the display was closed")
    assert of(InputKind.SUDS, 64.6) == cmd.AnswerSuds(source="patient (openvr)", value=65)
    assert of(InputKind.SUDS, 0.0) == cmd.AnswerSuds(source="patient (openvr)", value=0)
    assert of(InputKind.SUDS, None) is None
    assert of(InputKind.TRIGGER, 1.0) is None and of(InputKind.GRIP, 2.0) is None


def test_suds_answers_are_whole_points_and_ints():
    answer = of(InputKind.SUDS, 99.6)
    assert answer == cmd.AnswerSuds(source="patient (openvr)", value=100) and type(answer.value) is int
    assert of(InputKind.SUDS, 10.4).value == 10


def test_an_input_without_a_source_comes_from_the_patient():
    assert of(InputKind.STOP, source="") == cmd.GoToSafePlace(source="patient", reason="the patient asked to stop")
    assert of(InputKind.SUDS, 30.0, source="") == cmd.AnswerSuds(source="patient", value=30)


def test_put_patient_input_queues_the_command_and_drops_what_has_none(caplog):
    queue = cmd.CommandQueue()
    stop = PatientInput(2.0, InputKind.STOP, None, "desktop")
    trigger = PatientInput(3.0, InputKind.TRIGGER, 1.0, "openvr")
    with caplog.at_level(logging.DEBUG, logger="therapy.commands"):
        cmd.put_patient_input(queue, trigger)
        cmd.put_patient_input(queue, stop)
    assert [r.getMessage() for r in caplog.records if r.name == "therapy.commands"] == [
        f"patient input {trigger} has no command"]

    async def drain():
        queue.bind(asyncio.get_running_loop())
        first = await asyncio.wait_for(queue.get(), 5)
        assert queue._queue.empty()  # the trigger queued nothing
        return first

    assert asyncio.run(drain()) == cmd.GoToSafePlace(source="patient (desktop)", reason="the patient asked to stop")


def test_a_command_put_on_the_runtime_loop_is_queued_at_once():
    queue = cmd.CommandQueue()

    async def main():
        queue.bind(asyncio.get_running_loop())
        queue.put(cmd.Stop(source="console"))
        return queue._queue.get_nowait()  # no loop iteration in between: put straight into the queue

    assert asyncio.run(main()) == cmd.Stop(source="console")


def test_a_command_from_another_thread_arrives_through_the_loop():
    queue = cmd.CommandQueue()

    async def main():
        queue.bind(asyncio.get_running_loop())
        t = threading.Thread(target=queue.put, args=(cmd.RequestSuds(source="therapist"),))
        t.start()
        t.join()
        assert queue._queue.empty()  # handed to the loop, not pushed into its queue from the wrong thread
        return await asyncio.wait_for(queue.get(), 5)

    assert asyncio.run(main()) == cmd.RequestSuds(source="therapist")


def test_commands_sent_before_bind_arrive_first_and_in_order():
    queue = cmd.CommandQueue()
    queue.put(cmd.Stop(source="a"))
    queue.put(cmd.AddNote(source="b", text="note"))

    async def main():
        queue.bind(asyncio.get_running_loop())
        queue.put(cmd.ResumeExposure(source="c"))
        return [await asyncio.wait_for(queue.get(), 5) for _ in range(3)]

    assert asyncio.run(main()) == [cmd.Stop(source="a"), cmd.AddNote(source="b", text="note"),
                                   cmd.ResumeExposure(source="c")]
    assert queue._early == []


def test_get_before_bind_is_a_programming_error():
    queue = cmd.CommandQueue()
    with pytest.raises(AssertionError, match=r"^CommandQueue\.bind\(\) must be called on the runtime loop first$"):
        asyncio.run(queue.get())


def test_a_command_after_the_session_loop_closed_is_dropped_quietly():
    queue = cmd.CommandQueue()

    async def bind():
        queue.bind(asyncio.get_running_loop())

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(bind())
    finally:
        loop.close()
    queue.put(cmd.Stop(source="late"))  # the session is over: nothing to deliver to, nothing raised
    assert queue._early == []
