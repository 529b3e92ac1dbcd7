import Foundation

/// A VM to add to the simulator's inventory (`CloudStackSimulator.addVirtualMachine`,
/// `POST /sim/vms`): a test-failover VM per test, a VM whose stop hangs, and so on.
public struct SimulatorVirtualMachineSpec: Codable, Sendable, Equatable {
    /// Its UUID; a random one when absent.
    public var id: String?
    public var name: String
    /// `Running` or `Stopped` (the states a VM settles in).
    public var state: String
    /// Give it a ROOT volume of its own (device 0), as a VM deployed from a template has.
    /// Absent: a Running VM gets one, a Stopped VM awaits an attach as root.
    public var rootVolume: Bool?
    /// A stop that is not forced leaves the VM `Stopping` and its job never finishes.
    public var sticksInStopping: Bool

    public init(id: String? = nil, name: String, state: String = "Stopped", rootVolume: Bool? = nil, sticksInStopping: Bool = false) {
        self.id = id
        self.name = name
        self.state = state
        self.rootVolume = rootVolume
        self.sticksInStopping = sticksInStopping
    }

    enum CodingKeys: String, CodingKey {
        case id, name, state
        case rootVolume = "root_volume"
        case sticksInStopping = "sticks_in_stopping"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decodeIfPresent(String.self, forKey: .id)
        name = try container.decode(String.self, forKey: .name)
        state = try container.decodeIfPresent(String.self, forKey: .state) ?? "Stopped"
        rootVolume = try container.decodeIfPresent(Bool.self, forKey: .rootVolume)
        sticksInStopping = try container.decodeIfPresent(Bool.self, forKey: .sticksInStopping) ?? false
    }

    /// Why the spec cannot be added, or nil.
    func problem(existingIDs: Set<String>) -> String? {
        guard state == "Running" || state == "Stopped" else {
            return "state must be Running or Stopped, got \(state)"
        }
        guard !name.isEmpty else { return "name must not be empty" }
        if let id {
            guard UUID(uuidString: id) != nil else { return "id must be a UUID, got \(id)" }
            guard !existingIDs.contains(id.lowercased()) else { return "a VM with id \(id) already exists" }
        }
        return nil
    }
}

/// A fault setting for one VM (`CloudStackSimulator.setVirtualMachineFaults`,
/// `POST /sim/vms/{id}`).
public struct SimulatorVirtualMachineFaults: Codable, Sendable, Equatable {
    public var sticksInStopping: Bool

    public init(sticksInStopping: Bool) {
        self.sticksInStopping = sticksInStopping
    }

    enum CodingKeys: String, CodingKey {
        case sticksInStopping = "sticks_in_stopping"
    }
}
