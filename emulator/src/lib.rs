//! spinnbed-emulator: an emulated SpiNNaker machine, sans-IO (datagrams in, datagrams and
//! timers out). Filled in by the emulator issue.
#![forbid(unsafe_code)]
