//! The scenario harness behind `cerebro eval` and the benchmarks.
//!
//! Not built yet: issue #7 (scenario harness) and issues #3, #4, #6 (benchmarks).
