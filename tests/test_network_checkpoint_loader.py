"""NetworkCheckpointLoader: the weights are read and checked once, when the loader is built, and loaded at start."""
import pytest
import torch
from ignite.engine import Engine, Events

from orthogen.errors import InputError
from orthogen.handlers import NetworkCheckpointLoader


def test_the_checked_weights_are_loaded_at_engine_start_without_reading_the_file_again(tmp_path, monkeypatch):
    trained, fresh = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    torch.save(trained.state_dict(), tmp_path / "model.pt")
    reads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: reads.append(a[0]) or real_load(*a, **k))
    loader = NetworkCheckpointLoader(tmp_path / "model.pt", fresh, bundle_root=tmp_path)
    assert not torch.equal(fresh.weight, trained.weight)  # nothing loaded before the engine starts
    engine = Engine(lambda engine, batch: None)
    engine.add_event_handler(Events.STARTED, loader)
    engine.run([0], max_epochs=1)
    assert torch.equal(fresh.weight, trained.weight) and torch.equal(fresh.bias, trained.bias)
    with torch.no_grad():
        fresh.weight.zero_()
    engine.run([0], max_epochs=1)  # a second run (an app serving requests) loads them again
    assert torch.equal(fresh.weight, trained.weight)
    assert len(reads) == 1


def test_a_missing_file_stops_with_one_line(tmp_path):
    with pytest.raises(InputError, match="no such weights file"):
        NetworkCheckpointLoader(tmp_path / "none.pt", torch.nn.Linear(3, 2), bundle_root=tmp_path)
