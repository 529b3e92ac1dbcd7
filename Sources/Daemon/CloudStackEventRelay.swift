import CloudStack
import Logging
import Schema
import ServiceLifecycle

/// Wakes this process's CloudStack job waits on the entities other volumed processes received
/// webhook deliveries for (`JobWakeups.channel`; `POST /cloudstack/webhook` NOTIFYs it), so a
/// `volumed worker` beside `volumed serve` notices a finished job as soon as `serve` does.
/// Notifications missed while reconnecting cost nothing but a wait's planned poll.
struct CloudStackEventRelay: Service {
    let database: DatabaseURL
    let wakeups: JobWakeups
    let logger: Logger

    func run() async throws {
        let wakeups = self.wakeups
        await cancelWhenGracefulShutdown {
            await ChannelListener(database: database, channel: JobWakeups.channel, logger: logger)
                .run(onListening: {}, onNotification: { payload in wakeups.wake(relayed: payload) })
        }
    }
}
