mod destinations;
mod filters;
mod global;
mod paths;
mod sources;
mod testing;
mod tls;
