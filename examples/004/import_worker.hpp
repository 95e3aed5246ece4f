// Seed 004 (PyMOTW), multiprocessing_import_worker: the target, declared for other files.
#pragma once

void worker();
