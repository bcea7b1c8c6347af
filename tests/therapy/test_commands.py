"""Patient actions become session commands; the queue takes them from any thread."""

from __future__ import annotations

import asyncio
import threading

from environments.scene_state import InputKind, PatientInput
from therapy import commands as cmd


def test_patient_inputs_map_to_commands():
    def of(kind, value=None):
        return cmd.command_for_input(PatientInput(1.0, kind, value, "openvr"))

    assert of(InputKind.SUDS, 64.6) == cmd.AnswerSuds(source="patient (openvr)", value=65)
    assert isinstance(of(InputKind.STOP), cmd.GoToSafePlace)
    assert isinstance(of(InputKind.MENU), cmd.GoToSafePlace)  # the headset's STOP button
    assert isinstance(of(InputKind.QUIT), cmd.Interrupt)
    assert of(InputKind.TRIGGER) is None and of(InputKind.SUDS) is None


def test_queue_delivers_commands_from_other_threads_in_order():
    queue = cmd.CommandQueue()
    queue.put(cmd.Stop(source="early"))  # before the runtime loop exists

    async def main():
        queue.bind(asyncio.get_running_loop())
        threads = [threading.Thread(target=queue.put, args=(cmd.SetLevel(source=f"t{i}", level=i),)) for i in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return [await asyncio.wait_for(queue.get(), 5) for _ in range(6)]

    got = asyncio.run(main())
    assert got[0] == cmd.Stop(source="early")
    assert sorted(c.level for c in got[1:]) == [0, 1, 2, 3, 4]
