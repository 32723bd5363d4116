"""Jobs: create, list, cancel, results, live events; the pretrain block, the memory budget, the reaper."""
