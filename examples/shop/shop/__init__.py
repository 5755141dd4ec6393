"""A small shop that sends its slow and fragile work to queues: the example application of oxide-queue."""
