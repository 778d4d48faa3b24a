//! kaal-core's in-memory backend runs the in-process part of the conformance suite.

kaal_testkit::conformance_suite!(kaal_testkit::MemoryBackend);
