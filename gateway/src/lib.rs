//! sidestream gateway (being built).
