"""The record of a job: who launched it, from where, with which arguments, how often it was tried,
and what people did to it (JobAction); written in one statement beside its result, before it is sent."""
