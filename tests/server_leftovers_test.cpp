// ReconcileLeftovers against real processes: only the very process a crashed predecessor
// recorded is stopped, never a pid reused by another process.
#include "tests/supervisor_test_support.h"

namespace ralph::supervisor_test {
namespace {

class UnitReconcile : public UnitServerSupervisor {
protected:
    void TearDown() override
    {
        for (pid_t pid : children_) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
        UnitServerSupervisor::TearDown();
    }
    pid_t Child(const std::vector<std::string>& argv)
    {
        pid_t pid = Spawn(argv, true);
        children_.push_back(pid);
        EXPECT_TRUE(WaitForStat(pid));
        return pid;
    }
    static bool WaitForStat(pid_t pid)
    {
        for (int i = 0; i < 100; ++i) {
            // After exec, the command line is the new program's.
            if (!ProcFs().Cmdline(pid).empty() && ProcFs().Cmdline(pid)[0] != "") return true;
            usleep(10000);
        }
        return false;
    }
    std::vector<pid_t> children_;
};

TEST_F(UnitReconcile, ReusedPidWithAnotherStartTimeIsLeftAlone)
{
    // The recorded server is gone and its pid now belongs to someone else's process.
    std::string opencode_named = dir_ + "/opencode";
    std::filesystem::remove(opencode_named);
    std::filesystem::copy_file("/bin/sleep", opencode_named);
    pid_t pid = Child({opencode_named, "30"});  // even an opencode command line does not matter
    auto st = ProcFs().Stat(pid);
    ASSERT_TRUE(st);
    store_->SetManagedServer(ManagedServerRecord{pid, st->start_time + 1, ports_.first, NowMillis()});
    ServerSupervisor& s = Make();
    s.ReconcileLeftovers();
    usleep(200000);
    EXPECT_TRUE(Running(pid));
    EXPECT_FALSE(store_->GetManagedServer()) << "the stale record is cleared";
}

TEST_F(UnitReconcile, SameStartTimeButNotOpencodeIsLeftAlone)
{
    pid_t pid = Child({"/bin/sleep", "30"});
    auto st = ProcFs().Stat(pid);
    ASSERT_TRUE(st);
    store_->SetManagedServer(ManagedServerRecord{pid, st->start_time, ports_.first, NowMillis()});
    Make().ReconcileLeftovers();
    usleep(200000);
    EXPECT_TRUE(Running(pid));
    EXPECT_FALSE(store_->GetManagedServer());
}

TEST_F(UnitReconcile, TheRecordedServerStillRunningIsStopped)
{
    std::string opencode_named = dir_ + "/opencode";
    std::filesystem::remove(opencode_named);
    std::filesystem::copy_file("/bin/sleep", opencode_named);
    pid_t pid = Child({opencode_named, "30"});
    auto st = ProcFs().Stat(pid);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->pgid, pid) << "started in its own session, like the daemon does";
    store_->SetManagedServer(ManagedServerRecord{pid, st->start_time, ports_.first, NowMillis()});
    Make().ReconcileLeftovers();
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    children_.clear();
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    EXPECT_FALSE(store_->GetManagedServer());
}

}  // namespace
}  // namespace ralph::supervisor_test
