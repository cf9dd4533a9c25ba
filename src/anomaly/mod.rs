//! Anomaly scoring (in progress).
