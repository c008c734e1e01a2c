"""Executors: where pipeline steps run, behind the `loopml.ports.Executor` port.

    local       in the calling thread, one task at a time (debugging, tiny pipelines)
    processes   a pool of spawned worker processes on this machine
    ray         a Ray cluster: a local one started on demand, or an existing one joined

Tasks are a module-level function and a picklable value; steps exchange data through the
artifact store, never through executor memory. `factory.make_executor` picks one by name.
"""
