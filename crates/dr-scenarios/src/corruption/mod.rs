//! The runbook's "Data Corruption": find the scope, stop the application's
//! writes, find the last known good moment, restore it, verify it, tell the
//! operator what will be lost, and switch.

pub mod search;
