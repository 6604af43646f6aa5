//! The scheduler tick: firing due cron schedules, once per slot, with any number of replicas.
