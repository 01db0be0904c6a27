// How busy other processes kept the CPUs while the bench measured (Linux
// /proc): timings taken while something else runs are not worth much, and the
// report says so.
#ifndef RELATTN_BENCH_CPU_LOAD_H_
#define RELATTN_BENCH_CPU_LOAD_H_

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "bench/timing.h"

namespace relattn_bench {

class OthersLoad {
 public:
  OthersLoad() { Sample(busy_ticks_, own_ticks_, wall_s_); }

  // Fraction of all CPUs' time, since construction, that other processes
  // were running (0 = the bench had the machine to itself); -1 without /proc.
  double Fraction() const {
    double busy, own, wall;
    Sample(busy, own, wall);
    const double hz = double(sysconf(_SC_CLK_TCK));
    const double cpus = double(std::thread::hardware_concurrency());
    const double span = (wall - wall_s_) * hz * cpus;
    if (busy_ticks_ < 0 || own_ticks_ < 0 || span <= 0) return -1.0;
    const double others = (busy - busy_ticks_) - (own - own_ticks_);
    return others > 0 ? others / span : 0.0;
  }

 private:
  // busy: ticks of all CPUs not idle (user nice system irq softirq steal);
  // own: this process's user + system ticks, all threads. -1 if unreadable.
  static void Sample(double& busy, double& own, double& wall) {
    wall = NowSeconds();
    busy = own = -1.0;
    std::ifstream stat("/proc/stat");
    std::string cpu;
    double user, nice, system, idle, iowait, irq, softirq, steal;
    if (stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal) {
      busy = user + nice + system + irq + softirq + steal;
    }
    std::ifstream self("/proc/self/stat");
    std::string line;
    if (!std::getline(self, line) || line.rfind(')') == std::string::npos) return;
    std::istringstream rest(line.substr(line.rfind(')') + 2));  // fields 3.. after "(comm)"
    std::string field;
    double utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) utime = std::stod(field);
      if (i == 15) stime = std::stod(field);
    }
    own = utime + stime;
  }

  double busy_ticks_, own_ticks_, wall_s_;
};

}  // namespace relattn_bench

#endif  // RELATTN_BENCH_CPU_LOAD_H_
