"""Operations: delegated operations and their workers, one owner per sequence, threads per worker.

:mod:`.ownership` and :mod:`.threads` import no FiftyOne (the glue uses them); :mod:`.delegated` drives the glue on
FiftyOne's delegated-operation queue. Importing this package imports nothing.
"""
